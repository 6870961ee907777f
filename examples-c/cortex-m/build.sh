#!/usr/bin/env bash
# Builds the Cortex-M firmware (a separate CMake project, cross-compiled with
# cmake/arm-none-eabi.cmake) into <build-dir>/fota-fw.elf. The CTest cases of
# tests/qemu.py run it in QEMU against real servers.
# Usage: build.sh <build-dir> [features]   features: FOTA_FEATURES for the
# library (default "": the crate's default features, TLS included; "none":
# plain HTTP only). Exit 77 (CTest: skipped) when the cross compiler or
# qemu-system-arm is missing; scripts/setup.sh installs both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: build.sh <build-dir> [features]}
features=${2-}

for tool in arm-none-eabi-gcc qemu-system-arm timeout; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool not found; install it with scripts/setup.sh" \
             "(apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
        exit 77
    fi
done

cmake -S "$here" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/arm-none-eabi.cmake" \
      -DCMAKE_BUILD_TYPE=MinSizeRel -DFOTA_FEATURES="$features" >/dev/null
cmake --build "$build"
