#!/usr/bin/env bash
# Flash and RAM taken by fota in a linked firmware, per target.
#
# Builds the firmware archive with LTO (`cargo rustc --release --crate-type
# staticlib`; fails if the archive holds per-dependency objects, i.e. LTO is
# off), links it with rust-lld and --gc-sections, every fota_* entry point of
# include/fota.h as a GC root (what a firmware calling the whole API keeps),
# and prints the sections of the result: the library's share of the firmware,
# compiler-builtins members (memcpy, 64-bit division, ...) included.
#
# Usage: scripts/size.sh [--all] [--tls|--no-tls] [--stack] [--check] [target...]
#   target...  Rust targets (default: thumbv7em-none-eabihf)
#   --all      thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi
#              riscv32imc-unknown-none-elf, without and with TLS
#   --tls      with the `tls` feature only; --no-tls (default): without
#   --stack    also the worst-case stack of fota_request() with TLS on
#              thumbv7em-none-eabihf: -Z emit-stack-sizes (RUSTC_BOOTSTRAP=1
#              on stable) and the direct calls of the disassembly
#              (scripts/stack-estimate.py); the C hooks' own stack comes on top
#   --check    also fail when a thumbv7em-none-eabihf figure measured in this
#              run grows past scripts/size-budget.txt: no-TLS .text by more
#              than 10%, TLS .text by more than 3%, .bss by more than 1%, the
#              stack estimate by more than 5%
# Outputs: one line per build; the linked image and its map stay in
# target/size/<target>/<variant>/ (fota.elf, fota.map) for `nm --size-sort`.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi riscv32imc-unknown-none-elf)
BUDGET_TARGET=thumbv7em-none-eabihf
targets=()
variants=(no-tls)
check=0
stack=0
while [ $# -gt 0 ]; do
    case "$1" in
        --all) targets=("${ALL_TARGETS[@]}"); variants=(no-tls tls) ;;
        --tls) variants=(tls) ;;
        --no-tls) variants=(no-tls) ;;
        --check) check=1 ;;
        --stack) stack=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        -*) echo "size.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=("$BUDGET_TARGET")

has_tls=0
grep -qE '^tls *=' Cargo.toml && has_tls=1

host=$(rustc -vV | sed -n 's/^host: //p')
lld="$(rustc --print sysroot)/lib/rustlib/$host/bin/rust-lld"
[ -x "$lld" ] || { echo "size.sh: rust-lld not found at $lld" >&2; exit 1; }

# Every entry point the header declares.
mapfile -t entry_points < <(sed -n 's/^[a-z].*[ *]\(fota_[a-z0-9_]*\)(.*/\1/p' include/fota.h | sort -u)
[ ${#entry_points[@]} -gt 0 ] || { echo "size.sh: no fota_* functions in include/fota.h" >&2; exit 1; }
roots=()
for s in "${entry_points[@]}"; do roots+=(-u "$s"); done

target_dir=target/size
status=0
# Figures of the budget target measured in this run, by budget key.
declare -A measured
printf '%-28s %-7s %7s %8s %6s %6s %7s   %s\n' target variant .text .rodata .data .bss flash "(of .text: builtins, of them mem*; of .rodata: unwind)"
for target in "${targets[@]}"; do
    for variant in "${variants[@]}"; do
        if [ "$variant" = tls ] && [ $has_tls -eq 0 ]; then
            printf '%-28s %-7s %s\n' "$target" tls "n/a: the crate has no tls feature yet"
            continue
        fi
        features=(--no-default-features)
        [ "$variant" = tls ] && features+=(--features tls)
        if ! rustup target list --installed | grep -qx "$target"; then
            rustup target add "$target" >/dev/null
        fi
        err=$(mktemp)
        if ! cargo rustc --quiet --release --lib --crate-type staticlib --target "$target" \
                --target-dir "$target_dir" "${features[@]}" 2>"$err"; then
            cat "$err" >&2
            rm -f "$err"
            printf '%-28s %-7s %s\n' "$target" "$variant" "BUILD FAILED"
            status=1
            continue
        fi
        rm -f "$err"
        archive="$target_dir/$target/release/libfota.a"
        # With LTO the crate graph is one Rust object; without it, each
        # dependency has objects of its own (compiler-builtins is never LTO'd;
        # its compiler-rt C members are not .rcgu.o files).
        if ar t "$archive" | grep 'rcgu\.o$' | grep -vE '^(fota-|compiler_builtins-)' | grep -q .; then
            echo "size.sh: LTO is off in $archive" >&2
            exit 1
        fi
        out="$target_dir/$target/$variant"
        mkdir -p "$out"
        # A copy: the next variant's build overwrites the archive.
        cp "$archive" "$out/libfota.a"
        "$lld" -flavor gnu --gc-sections --entry=fota_request "${roots[@]}" \
            -Map="$out/fota.map" -o "$out/fota.elf" "$out/libfota.a"
        eval "$(python3 scripts/size-report.py "$out/fota.elf" "$out/fota.map")"
        # shellcheck disable=SC2154 # set by the eval above
        printf '%-28s %-7s %7d %8d %6d %6d %7d   (builtins %d, mem* %d; unwind %d)\n' \
            "$target" "$variant" "$text" "$rodata" "$data" "$bss" $((text + rodata + data)) \
            "$builtins_text" "$builtins_mem" "$unwind"
        if [ "$target" = "$BUDGET_TARGET" ]; then
            if [ "$variant" = no-tls ]; then
                measured[text]=$text
                measured[bss]=$bss
            else
                measured[tls-text]=$text
                measured[tls-bss]=$bss
            fi
        fi
    done
done

if [ $stack -eq 1 ]; then
    # A build of its own: the .stack_sizes sections change nothing in the
    # code, but the flag must not touch the archives measured above.
    err=$(mktemp)
    if ! RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Z emit-stack-sizes" cargo rustc --quiet --release --lib \
            --crate-type staticlib --target "$BUDGET_TARGET" --target-dir target/size-stack \
            --no-default-features --features tls 2>"$err"; then
        cat "$err" >&2
        echo "size.sh: stack build failed" >&2
        exit 1
    fi
    rm -f "$err"
    out="$target_dir/$BUDGET_TARGET/tls-stack"
    mkdir -p "$out"
    "$lld" -flavor gnu --gc-sections --entry=fota_request "${roots[@]}" -o "$out/fota.elf" \
        "target/size-stack/$BUDGET_TARGET/release/libfota.a"
    estimate=$(python3 scripts/stack-estimate.py "$out/fota.elf" fota_request)
    echo "$estimate" | sed "s/^stack=/$BUDGET_TARGET tls: worst-case stack of fota_request() /"
    measured[tls-stack]=$(echo "$estimate" | sed -n 's/^stack=//p')
fi

# check KEY PERCENT: the measured figure against the recorded one plus PERCENT.
check() {
    local key=$1 percent=$2 recorded limit
    recorded=$(awk -v t="$BUDGET_TARGET" -v k="$key" '$1 == t && $2 == k {print $3}' scripts/size-budget.txt)
    [ -n "$recorded" ] || { echo "size.sh: no '$BUDGET_TARGET $key N' line in scripts/size-budget.txt" >&2; exit 2; }
    limit=$((recorded + recorded * percent / 100))
    if [ "${measured[$key]}" -gt "$limit" ]; then
        echo "size.sh: FAIL: $BUDGET_TARGET $key ${measured[$key]} B is more than $percent% above the recorded $recorded B (limit $limit B)."
        echo "size.sh: find the growth with: arm-none-eabi-nm --size-sort -S -C $target_dir/$BUDGET_TARGET/*/fota.elf | tail"
        echo "size.sh: if it is intended, update scripts/size-budget.txt and BENCHMARKS.md."
        status=1
    else
        echo "size.sh: size check ok: $BUDGET_TARGET $key ${measured[$key]} B, recorded $recorded B, limit $limit B"
    fi
}

if [ $check -eq 1 ]; then
    if [ ${#measured[@]} -eq 0 ]; then
        echo "size.sh: --check needs a $BUDGET_TARGET build" >&2
        exit 2
    fi
    for key in text tls-text bss tls-bss tls-stack; do
        [ -n "${measured[$key]:-}" ] || continue
        case $key in
            text) check "$key" 10 ;;
            tls-text) check "$key" 3 ;;
            *-stack) check "$key" 5 ;;
            *) check "$key" 1 ;;
        esac
    done
fi
exit $status
