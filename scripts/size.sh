#!/usr/bin/env bash
# Builds the firmware archive for a Cortex-M target with LTO and prints the
# size of the library's code and data (the LTO object, without the
# compiler-builtins objects the linker pulls only on demand).
# Usage: scripts/size.sh [rust-target]   (default thumbv7em-none-eabihf)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-thumbv7em-none-eabihf}
cargo rustc --quiet --release --crate-type staticlib --target "$target"
archive="target/$target/release/libfota.a"
# With LTO the whole crate graph is one object; without it, each dependency
# (httparse, spin, serde_json_core) would be an object of its own.
if ar t "$archive" | grep -qE '^(httparse|spin|serde)'; then
    echo "size.sh: LTO is off in $archive" >&2
    exit 1
fi
obj=$(ar t "$archive" | grep '^fota-')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && ar x "$OLDPWD/$archive" "$obj")
arm-none-eabi-size -A "$dir/$obj" | awk -v t="$target" '
    $1 ~ /^\.text/ {text += $2} $1 ~ /^\.rodata/ {ro += $2}
    $1 ~ /^\.data/ {data += $2} $1 ~ /^\.bss/ {bss += $2}
    END {printf "%s: .text %d  .rodata %d  .data %d  .bss %d\n", t, text, ro, data, bss}'
