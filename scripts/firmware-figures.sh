#!/usr/bin/env bash
# Figures of fota in the Cortex-M4F firmware (examples-c/cortex-m) on QEMU's
# mps2-an386, downloading from nginx over the serial link and the host
# bridge: flash and static RAM (linker maps), peak stack (painted) of HTTP,
# HTTPS and signed-image requests, and instruction counts under -icount
# shift=0 per body byte (HTTP, HTTPS, SHA-256, read-back, MCUboot checks), per
# handshake and per ECDSA P-256 image verification. See
# examples-c/cortex-m/tests/figures.py.
#
# Usage: scripts/firmware-figures.sh [--check]
#   --check  also fail when a painted stack is more than 5% above the
#            qemu-stack lines of scripts/size-budget.txt
# Builds the firmware with TLS, with tls-4k-records, without TLS and without
# TLS but with signed-images in target/firmware/{tls,tls-4k,no-tls,no-tls-signed}.
# Needs arm-none-eabi-gcc, qemu-system-arm, nginx, openssl, imgtool
# (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
check=()
case "${1-}" in
    --check) check=(--check) ;;
    "") ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
esac
fw=examples-c/cortex-m
mkdir -p target/firmware
for build in tls: tls-4k:tls-4k-records no-tls:none no-tls-signed:signed-images; do
    variant=${build%%:*}
    log="target/firmware/$variant.log"
    if ! "$fw/build.sh" "target/firmware/$variant" "${build#*:}" >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
done
python3 "$fw/tests/figures.py" --builds target/firmware "${check[@]}"
