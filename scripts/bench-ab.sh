#!/usr/bin/env bash
# Before and after: runs scripts/bench-compare.sh of an earlier commit and of
# this checkout alternately (before, after, before, after, ...), so drift on a
# noisy host hits both alike, then prints the shout rows of every run side by
# side with their medians and the after/before ratio.
#
#   scripts/bench-ab.sh REV             # 3 rounds
#   ROUNDS=5 scripts/bench-ab.sh REV
#
# REV is built in a temporary git worktree with its own target directory (set
# AB_BASE_DIR to reuse one between invocations). Every bench-compare.sh setting
# (DURATION, RUNS, SIZES, RSS_FLOOD, ...) passes through to both sides; the
# defaults here keep one round near two minutes: DURATION=2s RUNS=1
# SIZES="32 1400" RSS_FLOOD=2s.
set -euo pipefail
cd "$(dirname "$0")/.."

rev=${1:?usage: scripts/bench-ab.sh REV}
rounds=${ROUNDS:-3}
export DURATION=${DURATION:-2s} RUNS=${RUNS:-1} SIZES=${SIZES:-"32 1400"} RSS_FLOOD=${RSS_FLOOD:-2s}

out=$(mktemp -d)
base=${AB_BASE_DIR:-$out/base}
cleanup() {
    if [[ -z ${AB_BASE_DIR:-} ]]; then
        git worktree remove --force "$base" 2>/dev/null || true
    fi
    rm -rf "$out"
}
trap cleanup EXIT

if [[ ! -d $base ]]; then
    git worktree add --detach --quiet "$base" "$rev"
fi
echo "before: $(git -C "$base" log -1 --format='%h %s' HEAD)" >&2
echo "after:  $(git log -1 --format='%h %s' HEAD)$(git diff --quiet || echo ' (+ uncommitted changes)')" >&2

for round in $(seq "$rounds"); do
    echo "round $round/$rounds: before" >&2
    (cd "$base" && bash scripts/bench-compare.sh) >"$out/before-$round.txt"
    echo "round $round/$rounds: after" >&2
    bash scripts/bench-compare.sh >"$out/after-$round.txt"
done

python3 - "$out" "$rounds" <<'PY'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
row = re.compile(r"^(\d+ B \S+(?: w\d+)?)\s+(shout|shout_busy)\s+(\d+)\s+\S+\s+([\d.]+)\s+\S+\s+\d+%\s+([\d.]+)")
def rows(path):
    found = {}
    for line in open(path):
        m = row.match(line)
        if m:
            cell, server, answers, p50, cost = m.groups()
            found[(cell, server)] = (float(answers), float(p50), float(cost))
    return found
runs = {side: [rows(f"{out}/{side}-{r}.txt") for r in range(1, rounds + 1)] for side in ("before", "after")}
keys = [k for k in runs["after"][0] if all(k in r for r in runs["before"] + runs["after"])]
names = ("answers/s", "p50 µs", "CPU µs/ans")
print(f"{'cell':<20} {'server':<11} {'metric':<11} {'before (each run)':<30} {'after (each run)':<30} {'after/before':>12}")
for key in keys:
    for i, name in enumerate(names):
        before = [r[key][i] for r in runs["before"]]
        after = [r[key][i] for r in runs["after"]]
        fmt = lambda xs: " ".join(f"{x:.0f}" if i == 0 else f"{x:.2f}" for x in xs)
        ratio = statistics.median(after) / statistics.median(before) if statistics.median(before) else float("nan")
        print(f"{key[0]:<20} {key[1]:<11} {name:<11} {fmt(before):<30} {fmt(after):<30} {ratio:>11.2f}x")
PY
