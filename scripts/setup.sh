#!/usr/bin/env bash
# Installs what the build, the tests and the demo need, on Debian with Rust
# (rustup) installed. Uses apt-get when run as root; otherwise says what is missing.
set -euo pipefail

CBINDGEN_VERSION=0.29.4
APT_PACKAGES=(cmake make gcc g++ pkg-config libcmocka-dev nginx python3 curl openssl valgrind
              gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
              qemu-system-arm lua5.3 lua5.4 liblua5.3-dev liblua5.4-dev)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing Debian packages: ${missing[*]}" >&2
        echo "setup: run: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# Cortex-M4F, Cortex-M3, Cortex-M0+, ESP32-C3 (scripts/size.sh --all).
rustup target add thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi \
    riscv32imc-unknown-none-elf >/dev/null

# imgtool (MCUboot's signing tool, PyPI) signs the images of the verify tests.
# (tests/verify.py runs it as `python3 -m imgtool.main` when it is not on PATH.)
if ! python3 -c "import imgtool.main" 2>/dev/null; then
    echo "setup: installing imgtool"
    python3 -m pip install --quiet imgtool 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages imgtool
fi

if ! cbindgen --version 2>/dev/null | grep -q " $CBINDGEN_VERSION\$"; then
    echo "setup: installing cbindgen $CBINDGEN_VERSION"
    cargo install --quiet --locked cbindgen --version "$CBINDGEN_VERSION"
fi
