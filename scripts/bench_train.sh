#!/usr/bin/env bash
# Training throughput, stpipe against Python sentence-transformers, in one run:
# the pipelines/sts.stp recipe (all-MiniLM-L6-v2 + mean pooling,
# CosineSimilarityLoss, batch 16, AdamW, WarmupLinear, dropout on) for STEPS
# optimizer steps (STEPS * 16 pairs), RUNS times each, alternating; prints
# pairs per second of each run, the medians and the ratio.
#
#   scripts/bench_train.sh [STEPS] [RUNS]
#
# stpipe's figure is the `examples_per_s` of its last step in metrics.jsonl
# (training loop only, no evaluation had run yet); Python's is `pairs_per_s`
# of scripts/python_sts_train.py (the trainer.train() call alone).
# STPIPE_SHARED overrides ../shared; PYTHON overrides /work/pyref/bin/python;
# STPIPE_BIN runs another stpipe binary (e.g. an older build) instead of
# building this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${STPIPE_SHARED:-../shared}"
STEPS="${1:-40}"
RUNS="${2:-3}"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
BIN="${STPIPE_BIN:-./target/release/stpipe}"
if [ -z "${STPIPE_BIN:-}" ]; then
    cargo build --release >/dev/null 2>&1 || cargo build --release
fi
rust=()
py=()
for r in $(seq 1 "$RUNS"); do
    "$BIN" --model-path "$SHARED/models" run pipelines/sts.stp \
        --max-steps "$STEPS" --quiet --run-dir "$TMP/run$r" >/dev/null 2>&1 || true
    v=$(grep '"step":'"$STEPS"'[,}]' "$TMP/run$r/metrics.jsonl" | grep -o '"examples_per_s":[0-9.]*' | cut -d: -f2)
    rust+=("$v")
    echo "stpipe run $r: $v pairs/s"
    if [ -x "$PYTHON" ]; then
        p=$("$PYTHON" scripts/python_sts_train.py --shared "$SHARED" --limit $((STEPS * 16)) 2>/dev/null \
            | tail -1 | grep -o '"pairs_per_s": [0-9.]*' | cut -d' ' -f2)
        py+=("$p")
        echo "python run $r: $p pairs/s"
    fi
done
python3 - "${rust[*]}" "${py[*]:-}" <<'PY'
import statistics, sys
rust = [float(x) for x in sys.argv[1].split()]
py = [float(x) for x in sys.argv[2].split()] if len(sys.argv) > 2 and sys.argv[2] else []
mr = statistics.median(rust)
print(f"stpipe median: {mr:.2f} pairs/s over {len(rust)} runs")
if py:
    mp = statistics.median(py)
    print(f"python median: {mp:.2f} pairs/s over {len(py)} runs")
    print(f"ratio stpipe/python: {mr / mp:.2f}")
PY
