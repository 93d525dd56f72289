#!/usr/bin/env bash
# Paired comparison of stpipe builds on a training recipe: the builds run
# one after the other, ROUNDS times, so that each round's builds see the
# same load; prints each run, each build's paired ratios against the first
# build and their median.
#
#   scripts/ab_train.sh ROUNDS STEPS RECIPE BIN_A BIN_B [BIN...]
#
# RECIPE sts: pipelines/sts.stp without its evaluators, checkpoints, save
#   and expectations; mnrl: MultipleNegativesRankingLoss at batch 64 on the
#   SNLI validation triplets (as scripts/bench_train.sh).
#
# A run's figure is its median step, not its mean: `examples_per_s` in
# metrics.jsonl is examples over the time since the stage started, so
# step k ended at (k * batch) / examples_per_s; the figure is the batch
# over the median time between consecutive steps from step 6 on. On a
# shared host a burst of load then moves a few steps, not the figure.
# STPIPE_SHARED overrides ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="$1"
STEPS="$2"
RECIPE="$3"
shift 3
SHARED="$(cd "${STPIPE_SHARED:-../shared}" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
. scripts/recipes.sh
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

case "$RECIPE" in
sts)
    PIPELINE="$TMP/sts.stp"
    export STPIPE_DATA="$SHARED/data"
    grep -v -E '^(evaluator |save |expect )|^  (evaluate|checkpoint):' pipelines/sts.stp >"$PIPELINE"
    ;;
mnrl)
    PIPELINE="$TMP/mnrl.stp"
    mnrl_pipeline "$PIPELINE" "$SHARED" fp32
    ;;
*)
    echo "unknown recipe $RECIPE (sts or mnrl)" >&2
    exit 2
    ;;
esac
echo "== recipe $RECIPE, $STEPS steps, $ROUNDS rounds of: $*"

for r in $(seq 1 "$ROUNDS"); do
    for b in "$@"; do
        "$b" --model-path "$SHARED/models" run "$PIPELINE" --max-steps "$STEPS" --quiet \
            --run-dir "$TMP/run" >/dev/null 2>&1
        python3 - "$TMP/run/metrics.jsonl" "$b" <<'PY' | tee -a "$TMP/runs"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# Time per example at the end of step k, whatever the batch: k / rate.
ends = [r["step"] / r["examples_per_s"] for r in rows if r.get("examples_per_s")]
steps = [b - a for a, b in zip(ends, ends[1:])][4:]
print(sys.argv[2], 1.0 / statistics.median(steps))
PY
        rm -rf "$TMP/run"
    done
done
python3 - "$TMP/runs" <<'PY'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]
names = list(dict.fromkeys(b for b, _ in runs))
vals = {n: [float(v) for b, v in runs if b == n] for n in names}
for n in names:
    print(f"{n}: median {statistics.median(vals[n]):.2f} examples/s")
for n in names[1:]:
    r = [y / x for x, y in zip(vals[names[0]], vals[n])]
    print(f"{n} / {names[0]}: " + " ".join(f"{x:.3f}" for x in r) + f", median {statistics.median(r):.3f}")
PY
