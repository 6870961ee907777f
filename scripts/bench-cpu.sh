#!/usr/bin/env bash
# CPU cost per body byte, deterministic: callgrind instruction counts (Ir) of
# one whole request over an in-memory transport and flash (benches/cpu.rs),
# beside the memcpy floor (the same bytes moved network -> receive buffer ->
# flash through the same mock hooks, no parsing).
#
#   scripts/bench-cpu.sh [SIZE] [--smoke] [--recv N] [--chunk N]
#     SIZE      image bytes (default 4194304 = 4 MiB)
#     --smoke   64 KiB image (quick check that the bench works)
#     --recv N  most bytes per recv (default 1460: one TCP segment)
#     --chunk N data bytes per chunk of the chunked body (default 4096)
#
# Counts only `measured_region` (callgrind --toggle-collect), so building the
# image and checking the result are left out. Built with the bench profile,
# i.e. the shipped release settings (opt-level "z", LTO); set e.g.
# CARGO_PROFILE_BENCH_OPT_LEVEL=3 to compare. Needs valgrind: installed with
# apt-get when run as root. Prints a markdown table; exits non-zero when a
# build or run fails (the bench checks the flashed image itself). The
# callgrind files stay in a temporary directory (printed) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

size=4194304
recv=1460
chunk=4096
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) size=65536 ;;
        --recv | --chunk)
            case "${2:-}" in
                *[!0-9]* | "" | 0) echo "bench-cpu: $1 needs a positive number" >&2; exit 2 ;;
            esac
            if [ "$1" = --recv ]; then recv=$2; else chunk=$2; fi
            shift ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *[!0-9]* | "") echo "bench-cpu: unknown argument $1 (see --help)" >&2; exit 2 ;;
        *) size=$1 ;;
    esac
    shift
done

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends valgrind >/dev/null
    else
        echo "bench-cpu: run: sudo apt-get install --no-install-recommends valgrind" >&2
        exit 1
    fi
fi

# The executable's path from cargo's own report, not a guess at the hash.
exe=$(cargo bench --no-run --features std --bench cpu --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cpu" and m.get("executable"):
        print(m["executable"])
')
[ -x "$exe" ] || { echo "bench-cpu: bench executable not found" >&2; exit 1; }

dir=$(mktemp -d /tmp/fota-bench-cpu.XXXXXX)

# run NAME ARGS...: one callgrind run of the measured region; prints its Ir.
run() {
    local name=$1
    shift
    if ! valgrind --tool=callgrind --toggle-collect='*measured_region*' \
        --callgrind-out-file="$dir/$name.out" "$exe" "$@" "$size" --recv "$recv" --chunk "$chunk" \
        >"$dir/$name.log" 2>&1; then
        echo "bench-cpu: $name failed:" >&2
        cat "$dir/$name.log" >&2
        exit 1
    fi
    local ir
    ir=$(awk '/^(totals|summary):/ { print $2; exit }' "$dir/$name.out")
    # 0 means the toggle matched nothing: no figure rather than a wrong one.
    if [ -z "$ir" ] || [ "$ir" = 0 ]; then
        echo "bench-cpu: $name: no instructions counted in measured_region" >&2
        exit 1
    fi
    echo "$ir"
}

floor=$(run memcpy memcpy)
rows=("memcpy (floor)|$floor")
for mode in length chunked; do
    for g in 0 256; do
        rows+=("$mode, granularity $g|$(run "$mode-g$g" "$mode" --granularity "$g")")
    done
done

echo "image $size bytes, at most $recv bytes per recv, chunks of $chunk bytes; $(rustc --version)"
echo
echo "| mode | body bytes | instructions | instructions per body byte | over the memcpy floor per byte |"
echo "|---|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
    awk -F'|' -v size="$size" -v floor="$floor" '{
        printf "| %s | %d | %d | %.3f | %+.3f |\n", $1, size, $2, $2 / size, ($2 - floor) / size
    }' <<<"$row"
done
echo
echo "callgrind files: $dir (callgrind_annotate $dir/length-g0.out)"
