#!/usr/bin/env bash
# Regenerates include/fota.h from the Rust sources with cbindgen.
# With --check, fails (without writing) when the committed header is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config cbindgen.toml --output "$tmp" .
if [ "${1:-}" = "--check" ]; then
    if ! diff -u include/fota.h "$tmp"; then
        echo "header.sh: include/fota.h is stale; run scripts/header.sh and commit it" >&2
        exit 1
    fi
    echo "header.sh: include/fota.h is up to date"
else
    cp "$tmp" include/fota.h
fi
