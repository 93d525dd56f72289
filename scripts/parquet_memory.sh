#!/usr/bin/env bash
# Peak resident memory and time of reading a large data set from Parquet
# against the same rows as JSON Lines: ROWS (anchor, positive, negative)
# rows (scripts/parquet_memory_data.py), read by a pipeline that trains
# one MultipleNegativesRankingLoss step of all-MiniLM-L6-v2 on them (the
# whole source is loaded before the step), each measured by
# /usr/bin/time -v.
#
#   scripts/parquet_memory.sh [ROWS]      (default 1000000)
#
# STPIPE_SHARED overrides ../shared; STPIPE_BIN runs another stpipe binary;
# PYTHON (default /work/pyref/bin/python) must have pyarrow.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
PY="${PYTHON:-/work/pyref/bin/python}"
source scripts/common.sh
"$PY" scripts/parquet_memory_data.py "$TMP" --rows "$ROWS" --shared "$SHARED"
echo "== $ROWS rows: rows.parquet $(du -m "$TMP/rows.parquet" | cut -f1) MB, rows.jsonl $(du -m "$TMP/rows.jsonl" | cut -f1) MB"

for fmt in parquet jsonl; do
    cat > "$TMP/$fmt.stp" <<STP
model m = Transformer("sentence-transformers/all-MiniLM-L6-v2", max_seq_length: 64) -> Pooling(mean)
data rows = $fmt("rows.$fmt") { anchor: col("anchor"), positive: col("positive"), negative: col("negative") }
objective o = MultipleNegativesRankingLoss(m) on rows (batch_size: 16)
train m { objectives: [o] }
STP
    /usr/bin/time -v "$BIN" --model-path "$SHARED/models" run "$TMP/$fmt.stp" --run-dir "$TMP/run-$fmt" \
        --max-steps 1 --quiet 2> "$TMP/$fmt.time" >/dev/null || { cat "$TMP/$fmt.time"; exit 1; }
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$TMP/$fmt.time")
    wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$TMP/$fmt.time")
    echo "$fmt: peak RSS $((rss / 1024)) MiB, wall $wall"
done
