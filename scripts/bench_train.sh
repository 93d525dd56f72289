#!/usr/bin/env bash
# Training throughput and peak memory, stpipe against Python
# sentence-transformers, in one run, RUNS times each, alternating; prints
# each run, the medians and the ratio.
#
#   scripts/bench_train.sh [STEPS] [RUNS] [RECIPE]
#
# RECIPE sts (default): the pipelines/sts.stp recipe (all-MiniLM-L6-v2 +
#   mean pooling, CosineSimilarityLoss, batch 16, AdamW, WarmupLinear,
#   dropout on) for STEPS optimizer steps (STEPS * 16 pairs); Python:
#   scripts/python_sts_train.py.
# RECIPE mnrl: MultipleNegativesRankingLoss at batch 64 on the SNLI
#   validation triplets (anchor, entailment, contradiction), mean pooling,
#   max_seq_length 128; Python: scripts/python_mnrl_train.py.
#
# PRECISION=bf16 trains both sides with bf16 products: the stages'
# `precision: bf16` and the Trainer's `bf16=True` (default fp32).
#
# BUSY=1 keeps one core busy with another process for the whole run (a
# shared CI runner or a laptop is never quiet).
#
# stpipe's figure is the `examples_per_s` of its last step in metrics.jsonl
# (training loop only, no evaluation had run yet); Python's is the
# throughput of the trainer.train() call alone. Peak memory is the maximum
# resident set of each whole process (/usr/bin/time). STPIPE_SHARED
# overrides ../shared; PYTHON overrides /work/pyref/bin/python; STPIPE_BIN
# runs another stpipe binary (e.g. an older build) instead of building
# this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-40}"
RUNS="${2:-3}"
RECIPE="${3:-sts}"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
PRECISION="${PRECISION:-fp32}"
. scripts/common.sh
. scripts/recipes.sh
PYFLAGS=()
case "$PRECISION" in
fp32) ;;
bf16) PYFLAGS=(--bf16) ;;
*)
    echo "unknown PRECISION $PRECISION (fp32 or bf16)" >&2
    exit 2
    ;;
esac

case "$RECIPE" in
sts)
    PIPELINE=pipelines/sts.stp
    if [ "$PRECISION" != fp32 ]; then
        # A copy with the stage's precision, reading the shared data and
        # saving into $TMP.
        export STPIPE_DATA="$SHARED/data"
        PIPELINE="$TMP/sts.stp"
        sed -e "s|^  seed: 42\$|  seed: 42\n  precision: $PRECISION|" \
            -e "s|^save sbert to \"[^\"]*\"|save sbert to \"$TMP/out\"|" pipelines/sts.stp >"$PIPELINE"
        grep -q "precision: $PRECISION" "$PIPELINE"
    fi
    PYCMD=("$PYTHON" scripts/python_sts_train.py --shared "$SHARED" --limit $((STEPS * 16)) "${PYFLAGS[@]}")
    PYKEY=pairs_per_s
    ;;
mnrl)
    PIPELINE="$TMP/mnrl.stp"
    mnrl_pipeline "$PIPELINE" "$SHARED" "$PRECISION"
    PYCMD=("$PYTHON" scripts/python_mnrl_train.py --shared "$SHARED" --limit $((STEPS * 64)) "${PYFLAGS[@]}")
    PYKEY=triplets_per_s
    ;;
*)
    echo "unknown recipe $RECIPE (sts or mnrl)" >&2
    exit 2
    ;;
esac

if [ "${BUSY:-0}" = 1 ]; then
    # One core kept busy by a process of its own for the whole run.
    python3 -c 'while True: pass' &
    BUSY_PID=$!
    trap 'kill $BUSY_PID 2>/dev/null; rm -rf "$TMP"' EXIT
    echo "== one core kept busy by pid $BUSY_PID"
fi
echo "== recipe $RECIPE, $STEPS steps, $RUNS runs each, precision $PRECISION"

rust=()
py=()
rust_kb=()
py_kb=()
for r in $(seq 1 "$RUNS"); do
    /usr/bin/time -f "%M" -o "$TMP/rss" "$BIN" --model-path "$SHARED/models" run "$PIPELINE" \
        --max-steps "$STEPS" --quiet --run-dir "$TMP/run$r" >/dev/null 2>&1 || true
    v=$(grep '"step":'"$STEPS"'[,}]' "$TMP/run$r/metrics.jsonl" | grep -o '"examples_per_s":[0-9.]*' | cut -d: -f2)
    kb=$(tail -1 "$TMP/rss")
    rust+=("$v")
    rust_kb+=("$kb")
    echo "stpipe run $r: $v examples/s, peak RSS $((kb / 1024)) MiB"
    rm -rf "$TMP/run$r"
    if [ -x "$PYTHON" ]; then
        p=$(/usr/bin/time -f "%M" -o "$TMP/rss" "${PYCMD[@]}" 2>/dev/null \
            | tail -1 | grep -o "\"$PYKEY\": [0-9.]*" | cut -d' ' -f2)
        kb=$(tail -1 "$TMP/rss")
        py+=("$p")
        py_kb+=("$kb")
        echo "python run $r: $p examples/s, peak RSS $((kb / 1024)) MiB"
    fi
done
python3 scripts/medians.py --unit examples/s --stpipe "${rust[*]}" --python "${py[*]:-}" \
    --stpipe-kb "${rust_kb[*]}" --python-kb "${py_kb[*]:-}"
