#!/usr/bin/env bash
# Encoding throughput, stpipe against Python sentence-transformers, in one
# run, alternating: all 2,758 sentences of the STS benchmark test split
# (both columns) with all-MiniLM-L6-v2 at batch 32 by default. Each round
# runs one stpipe process (model load, one warm-up batch, one timed pass)
# and then one Python process (model load, one warm-up pass, one timed
# pass), so that both sides see the same load on a shared machine; prints
# each round, the medians and the ratio.
#
#   scripts/bench_encode.sh [MODEL_DIR] [BATCH] [RUNS]
#
# STPIPE_SHARED overrides ../shared; PYTHON overrides /work/pyref/bin/python;
# BENCH_BIN runs another build of examples/bench_encode (e.g. an older one)
# instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${STPIPE_SHARED:-../shared}"
MODEL="${1:-$SHARED/models/all-MiniLM-L6-v2}"
BATCH="${2:-32}"
RUNS="${3:-5}"
DATA="$SHARED/data/stsbenchmark/sts-test.csv"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
BENCH="${BENCH_BIN:-./target/release/examples/bench_encode}"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release --example bench_encode >/dev/null 2>&1 || cargo build --release --example bench_encode
fi
python_ok=0
if [ -x "$PYTHON" ] && [ -f scripts/bench_encode.py ]; then
    python_ok=1
else
    echo "== python sentence-transformers: skipped ($PYTHON or scripts/bench_encode.py missing)"
fi
echo "== $MODEL, batch $BATCH, $RUNS rounds"

rust=()
py=()
for r in $(seq 1 "$RUNS"); do
    v=$("$BENCH" "$MODEL" "$DATA" "$BATCH" 1 | grep -o '= [0-9.]* sentences/s' | cut -d' ' -f2)
    rust+=("$v")
    echo "stpipe round $r: $v sentences/s"
    if [ "$python_ok" = 1 ]; then
        p=$("$PYTHON" scripts/bench_encode.py --shared "$SHARED" --model "$MODEL" \
            --batch-size "$BATCH" --runs 1 2>/dev/null | tail -1 | grep -o '"sentences_per_s": [0-9.]*' | cut -d' ' -f2)
        py+=("$p")
        echo "python round $r: $p sentences/s"
    fi
done
python3 scripts/medians.py --unit sentences/s --stpipe "${rust[*]}" --python "${py[*]:-}"
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
