#!/usr/bin/env bash
# Runs every cargo-fuzz target (or those named) for FUZZ_SECONDS each (default 30) and
# fails on the first crash, leak, timeout or out-of-memory, printing how to reproduce it.
#
#   scripts/fuzz-smoke.sh                      # all targets, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh handler
#
# Needs the nightly toolchain (libFuzzer's instrumentation); installs cargo-fuzz if missing.
# New corpus entries go to a temporary directory: fuzz/corpus/<target>/ holds only the
# committed seeds. Crash inputs land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
case "$seconds" in
'' | *[!0-9]*) echo "error: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "error: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== building ${targets[*]}"
cargo +nightly fuzz build

for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    mkdir -p "$work/$target" "fuzz/corpus/$target" "fuzz/artifacts/$target"
    touch "$work/$target.start"
    # -timeout: one input taking this long is a bug (a hang), not a slow machine.
    if ! cargo +nightly fuzz run "$target" "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>"$work/$target.log"; then
        tail -n 60 "$work/$target.log" >&2
        echo "error: fuzz target $target failed; reproduce with:" >&2
        find "fuzz/artifacts/$target" -type f -newer "$work/$target.start" | while read -r input; do
            echo "  cargo +nightly fuzz run $target $input" >&2
        done
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$target.log" || true
    grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$target.log" | tail -n 1 || true
done
echo "== fuzz smoke passed: ${targets[*]} (${seconds}s each)"
