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
# Usage: scripts/size.sh [--all] [--tls|--no-tls] [--check] [target...]
#   target...  Rust targets (default: thumbv7em-none-eabihf)
#   --all      thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi
#              riscv32imc-unknown-none-elf, without and with TLS (with TLS only
#              once the crate has a `tls` feature)
#   --tls      with the `tls` feature only; --no-tls (default): without
#   --check    also fail when the thumbv7em-none-eabihf no-TLS .text is more
#              than 10% above the figure in scripts/size-budget.txt
# Outputs: one line per build; the linked image and its map stay in
# target/size/<target>/<variant>/ (fota.elf, fota.map) for `nm --size-sort`.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi riscv32imc-unknown-none-elf)
BUDGET_TARGET=thumbv7em-none-eabihf
targets=()
variants=(no-tls)
check=0
while [ $# -gt 0 ]; do
    case "$1" in
        --all) targets=("${ALL_TARGETS[@]}"); variants=(no-tls tls) ;;
        --tls) variants=(tls) ;;
        --no-tls) variants=(no-tls) ;;
        --check) check=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
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
budget_text=""
printf '%-28s %-7s %7s %8s %6s %6s %7s   %s\n' target variant .text .rodata .data .bss flash "(of .text: builtins; of .rodata: unwind)"
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
        printf '%-28s %-7s %7d %8d %6d %6d %7d   (builtins %d; unwind %d)\n' \
            "$target" "$variant" "$text" "$rodata" "$data" "$bss" $((text + rodata + data)) \
            "$builtins_text" "$unwind"
        if [ "$target" = "$BUDGET_TARGET" ] && [ "$variant" = no-tls ]; then
            budget_text=$text
        fi
    done
done

if [ $check -eq 1 ]; then
    if [ -z "$budget_text" ]; then
        echo "size.sh: --check needs the $BUDGET_TARGET no-tls build" >&2
        exit 2
    fi
    recorded=$(awk -v t="$BUDGET_TARGET" '$1 == t && $2 == "text" {print $3}' scripts/size-budget.txt)
    [ -n "$recorded" ] || { echo "size.sh: no '$BUDGET_TARGET text N' line in scripts/size-budget.txt" >&2; exit 2; }
    limit=$((recorded + recorded / 10))
    if [ "$budget_text" -gt "$limit" ]; then
        echo "size.sh: FAIL: $BUDGET_TARGET no-TLS .text $budget_text B is more than 10% above the recorded $recorded B (limit $limit B)."
        echo "size.sh: find the growth with: arm-none-eabi-nm --size-sort -S -C $target_dir/$BUDGET_TARGET/no-tls/fota.elf | tail"
        echo "size.sh: if it is intended, update scripts/size-budget.txt and BENCHMARKS.md."
        status=1
    else
        echo "size.sh: size check ok: $BUDGET_TARGET no-TLS .text $budget_text B, recorded $recorded B, limit $limit B"
    fi
fi
exit $status
