#!/usr/bin/env bash
# Time to the first training step (process start to the end of step 1, what
# a CI smoke run pays before any training), stpipe against Python
# sentence-transformers on the sts.stp recipe, RUNS times each,
# alternating; prints each run and the medians.
#
#   scripts/bench_first_step.sh [RUNS]
#
# Both sides train without evaluators: stpipe runs pipelines/sts.stp with
# its evaluator, save and expect lines taken out (so no untrained baseline
# is evaluated first) until metrics.jsonl holds step 1 (checking, planning,
# loading the model and the data, step 1); Python runs
# scripts/python_first_step.py (imports, model, dataset, trainer, step 1).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
. scripts/common.sh

sed -e "s#\${STPIPE_DATA:-../../shared/data}#$SHARED/data#" \
    -e '/^evaluator/d' -e '/evaluate:/d' -e '/^save/d' -e '/^expect/d' \
    pipelines/sts.stp >"$TMP/sts_train.stp"
now() { date +%s.%N; }
rust=()
py=()
for r in $(seq 1 "$RUNS"); do
    dir="$TMP/run$r"
    t0=$(now)
    "$BIN" --model-path "$SHARED/models" run "$TMP/sts_train.stp" --quiet --run-dir "$dir" \
        >/dev/null 2>&1 &
    pid=$!
    until grep -qs '"step":1[,}]' "$dir/metrics.jsonl"; do
        sleep 0.01
        kill -0 "$pid" 2>/dev/null || break
    done
    t1=$(now)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rust+=("$(echo "$t1 - $t0" | bc -l)")
    echo "stpipe run $r: ${rust[-1]} s"
    if [ -x "$PYTHON" ]; then
        t0=$(now)
        t1=$("$PYTHON" scripts/python_first_step.py "$SHARED" 2>/dev/null | tail -1)
        py+=("$(echo "$t1 - $t0" | bc -l)")
        echo "python run $r: ${py[-1]} s"
    fi
done
python3 scripts/medians.py --unit "s to step 1" --stpipe "${rust[*]}" --python "${py[*]:-}" --no-ratio
