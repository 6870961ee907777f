#!/usr/bin/env bash
# Builds the Cortex-M firmware (a separate CMake project, cross-compiled with
# cmake/arm-none-eabi.cmake) and runs it in QEMU's mps2-an386 under timeout.
# Passes when the firmware exits with 0 (every scenario passed).
# Usage: run-qemu.sh <build-dir> [features]   features: FOTA_FEATURES for the
# library (default "none": plain HTTP, no TLS). Exit 77 (CTest: skipped) when the
# cross compiler or qemu-system-arm is missing; scripts/setup.sh installs both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: run-qemu.sh <build-dir> [features]}
features=${2-none}
: "${QEMU_TIMEOUT:=20}"

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

echo "== qemu-system-arm -M mps2-an386 (timeout ${QEMU_TIMEOUT}s)"
start=$(date +%s.%N)
set +e
# QEMU 7.2 writes semihosting output to stderr.
timeout "$QEMU_TIMEOUT" qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$build/fota-fw.elf" 2>&1
rc=$?
set -e
end=$(date +%s.%N)
echo "== exit code $rc, $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s"
if [ "$rc" -eq 124 ]; then
    echo "FAIL: the firmware did not finish within ${QEMU_TIMEOUT}s"
fi
exit "$rc"
