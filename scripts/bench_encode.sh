#!/usr/bin/env bash
# Encoding throughput, stpipe against Python sentence-transformers, in one run:
# all 2,758 sentences of the STS benchmark test split (both columns), with
# all-MiniLM-L6-v2, batch 32, median of 5 runs each.
#
#   scripts/bench_encode.sh [MODEL_DIR] [BATCH] [RUNS]
#
# STPIPE_SHARED overrides ../shared; PYTHON overrides /work/pyref/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${STPIPE_SHARED:-../shared}"
MODEL="${1:-$SHARED/models/all-MiniLM-L6-v2}"
BATCH="${2:-32}"
RUNS="${3:-5}"
DATA="$SHARED/data/stsbenchmark/sts-test.csv"
PYTHON="${PYTHON:-/work/pyref/bin/python}"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cargo build --release --example bench_encode >/dev/null 2>&1 || cargo build --release --example bench_encode
echo "== stpipe (release)"
./target/release/examples/bench_encode "$MODEL" "$DATA" "$BATCH" "$RUNS"
if [ -x "$PYTHON" ] && [ -f scripts/bench_encode.py ]; then
    echo "== python sentence-transformers"
    "$PYTHON" scripts/bench_encode.py --shared "$SHARED" --model "$MODEL" --batch-size "$BATCH" --runs "$RUNS"
else
    echo "== python sentence-transformers: skipped ($PYTHON or scripts/bench_encode.py missing)"
fi
