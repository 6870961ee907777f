#!/usr/bin/env bash
# The benchmark figures of BENCHMARKS.md, printed as markdown.
#
#   scripts/bench.sh           256 MiB throughput runs, 4 MiB callgrind runs,
#                              the full fault matrix (about 5 minutes)
#   scripts/bench.sh --smoke   the same steps with small images and few runs
#                              (what scripts/test.sh runs: does it still work?)
#
# Steps: the machine; fota-posix (CMake Release build: the library's host
# configuration, see README "Build configuration") against curl from one
# nginx on loopback, http and https, into a file and discarded, throughput
# and CPU time (scripts/bench.py); instructions per body byte under callgrind
# (scripts/bench-cpu.sh); linked sizes for thumbv7em-none-eabihf without and
# with TLS (scripts/size.sh); bytes fetched per image byte when connections
# drop (the fault matrix, examples-c/posix/tests/faults.py).
# Installs what it needs (scripts/setup.sh). Not a test: it fails only when a
# step cannot run, never on a slow figure.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
case "${1:-}" in
    --smoke) smoke=1 ;;
    "") ;;
    *) echo "usage: scripts/bench.sh [--smoke]" >&2; exit 2 ;;
esac
if [ "$smoke" -eq 1 ]; then
    throughput=(--size 4 --runs 1 --handshakes 3); cpu=(--smoke); points=(--points 12)
else
    throughput=(); cpu=(); points=()
fi

scripts/setup.sh >&2

echo "## Machine"
echo
echo "- $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(nproc) cores, $(uname -sr)"
echo "- $(rustc --version), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(curl --version | head -n1 | cut -d' ' -f1-2), $(openssl version | cut -d' ' -f1-2), $(valgrind --version)"
echo "- $(date -u +%Y-%m-%d), \`scripts/bench.sh${1:+ $1}\`"

echo
echo "## Throughput against curl (scripts/bench.py)"
echo
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" --target fota-posix >/dev/null
python3 scripts/bench.py --fota build/bench/examples-c/posix/fota-posix "${throughput[@]}"

echo
echo "## CPU per body byte (scripts/bench-cpu.sh)"
echo
scripts/bench-cpu.sh "${cpu[@]}"

echo
echo "## Flash and static RAM, thumbv7em-none-eabihf, linked with --gc-sections (scripts/size.sh)"
echo
echo '```'
scripts/size.sh --no-tls thumbv7em-none-eabihf
scripts/size.sh --tls thumbv7em-none-eabihf | tail -n1
echo '```'

echo
echo "## Resume cost: response bytes fetched per image byte (fault matrix)"
echo
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if python3 examples-c/posix/tests/faults.py --fota build/bench/examples-c/posix/fota-posix \
        --mode matrix "${points[@]}" >"$log" 2>&1; then
    grep -E '^(bytes forwarded|summary)' "$log" | sed 's/^/- /'
else
    tail -n 40 "$log" >&2
    echo "bench: the fault matrix failed" >&2
    exit 1
fi
