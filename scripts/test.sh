#!/usr/bin/env bash
# Runs every test: Rust unit tests and lints, the header check, the Cortex-M
# cross build (LTO checked), and the CMake build with its CTest suite
# (cmocka tests through fota.h, end-to-end downloads from real servers, the
# Lua modules under Lua 5.3 and 5.4 and once under ASan),
# the fuzz targets for 30 s each and the benchmarks in smoke mode.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step setup
scripts/setup.sh

step "cargo fmt, clippy"
cargo fmt --all -- --check
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --features std --test fuzz_regressions -- -D warnings

step "cargo test (with the std feature: also tests/, the fuzz regressions)"
cargo test --quiet --features std

step "cargo test --lib with rx-64k (the receive buffer of the host build)"
cargo test --quiet --lib --features rx-64k

step "header check"
scripts/header.sh --check

step "cross builds (Cortex-M4F/M3/M0+, ESP32-C3; with and without TLS; LTO) and size check"
# Links each build with --gc-sections and prints its sections; fails when the
# thumbv7em no-TLS .text is more than 10% above scripts/size-budget.txt.
scripts/size.sh --all --check

step "cmake build and ctest"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/test -j"$(nproc)"
ctest --test-dir build/test --output-on-failure -j"$(nproc)"

step "fuzz: each cargo-fuzz target for 30 s (scripts/fuzz.sh --long: 600 s)"
scripts/fuzz.sh 30

step "benchmarks, smoke mode (scripts/bench.sh without --smoke prints the figures)"
scripts/bench.sh --smoke

echo
echo "test.sh: all tests passed"
