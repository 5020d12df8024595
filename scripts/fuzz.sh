#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one after the other,
# and prints per target the executions, the seconds and the result. Not part of CI: a full
# run of the 12 targets takes 12 x SECONDS plus the build (see fuzz/README.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Each target starts from its seeds in fuzz/seeds/<target>/ and keeps what it learns in
# fuzz/corpus/<target>/ (ignored by git). A crash, hang (-timeout) or allocation over
# -rss_limit_mb is saved to fuzz/artifacts/<target>/; replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>`.
set -euo pipefail

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
    echo "fuzz.sh: SECONDS must be a positive whole number, not '$seconds'" >&2
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; installing it from crates.io (cargo install cargo-fuzz)" >&2
    cargo install --locked cargo-fuzz
fi

# cargo-fuzz passes -Z flags (sanitizers, coverage) to rustc: allowed on the stable
# toolchain with RUSTC_BOOTSTRAP, so no nightly is needed.
export RUSTC_BOOTSTRAP=1

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

echo "fuzz.sh: building ${#targets[@]} targets"
cargo fuzz build --fuzz-dir fuzz

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
printf '%-20s %12s %8s %10s  %s\n' target executions seconds execs/s result
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
    [[ -f fuzz/dict/$target.dict ]] && args+=(-dict="fuzz/dict/$target.dict")
    seeds=()
    [[ -d fuzz/seeds/$target ]] && seeds=("fuzz/seeds/$target")
    log=$logs/$target.log
    if nice -n 19 cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" "${seeds[@]}" -- "${args[@]}" \
        >"$log" 2>&1; then
        result=ok
    else
        failed=1
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n1 | cut -d' ' -f5)
        result="FAILED: ${artifact:-see the log below}"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$' || true)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n1 | cut -d' ' -f5 || true)
    runs=${runs:-?}
    took=${took:-$seconds}
    rate='?'
    [[ $runs =~ ^[0-9]+$ && $took -gt 0 ]] && rate=$((runs / took))
    printf '%-20s %12s %8s %10s  %s\n' "$target" "$runs" "$took" "$rate" "$result"
    if [[ $result != ok ]]; then
        # The panic message or libFuzzer's reason (timeout, out of memory, sanitizer report).
        grep -m1 -A4 -E 'panicked at|ERROR: libFuzzer|==ERROR' "$log" | sed 's/^/    /' ||
            tail -n 20 "$log" | sed 's/^/    /'
    fi
done
exit "$failed"
