#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets: head, chunked, url,
# session, mcuboot) for SECONDS each, two at a time, starting from the committed seed
# corpora in fuzz/corpus/ (new inputs go to a temporary directory, so the
# committed corpora stay as they are).
#
#   scripts/fuzz.sh [SECONDS]    default 30 (what scripts/test.sh runs)
#   scripts/fuzz.sh --long       600 s per target
#
# Installs what it needs: the nightly toolchain (rustup, minimal profile) when
# it can be downloaded, else the stable toolchain with RUSTC_BOOTSTRAP=1
# (cargo-fuzz needs -Zsanitizer); cargo-fuzz with `cargo install --locked`.
# A finding stops with exit 1 and leaves the input in fuzz/artifacts/<target>/;
# copy it to tests/fuzz_regressions/<target>/ to make it a regression test.
# Prints executions per second and total executions per target.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-30}" in
    --long) secs=600 ;;
    *[!0-9]* | "") echo "usage: scripts/fuzz.sh [SECONDS|--long]" >&2; exit 2 ;;
    *) secs=${1:-30} ;;
esac
targets=(head chunked url session mcuboot)

if rustup run nightly rustc --version >/dev/null 2>&1 ||
   rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    toolchain=(+nightly)
    echo "fuzz: nightly toolchain ($(rustup run nightly rustc --version))"
else
    toolchain=()
    export RUSTC_BOOTSTRAP=1
    echo "fuzz: nightly not available; stable with RUSTC_BOOTSTRAP=1 ($(rustc --version))"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fota-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fuzz: building ${targets[*]}"
(cd fuzz && cargo "${toolchain[@]}" fuzz build >"$work/build.log" 2>&1) || {
    cat "$work/build.log" >&2
    exit 1
}

# One target: SECONDS of libFuzzer from the seeds; its log in $work/<t>.log.
run_target() {
    local t=$1
    mkdir -p "$work/corpus-$t" "fuzz/artifacts/$t"
    (cd fuzz && cargo "${toolchain[@]}" fuzz run "$t" "$work/corpus-$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/") >"$work/$t.log" 2>&1
}

status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for t in "${targets[@]:i:2}"; do
        echo "fuzz: $t for ${secs} s"
        run_target "$t" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1
    done
done

printf '\n%-8s %12s %14s  %s\n' target "execs/s" "total execs" result
for t in "${targets[@]}"; do
    log="$work/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    if grep -q 'Test unit written to' "$log"; then
        result="FINDING: $(sed -n 's/.*Test unit written to //p' "$log" | tail -n1)"
        grep -m1 -A3 "panicked at" "$log" | sed 's/^/    /' >&2 || true
        status=1
    elif ! grep -q '^Done [0-9]* runs' "$log"; then
        result="FAILED (see below)"
        tail -n 30 "$log" >&2
        status=1
    else
        result="no finding"
    fi
    printf '%-8s %12s %14s  %s\n' "$t" "${rate:-?}" "${execs:-?}" "$result"
done
if [ "$status" -ne 0 ]; then
    echo "fuzz: FAILED; copy each finding to tests/fuzz_regressions/<target>/" >&2
fi
exit "$status"
