#!/usr/bin/env bash
# Time and peak resident memory of hard-negative mining at scale: the
# 10,000 (anchor, positive) pairs and the corpus of every distinct sentence
# of ../shared/data (about 56,000) that scripts/mine_memory_data.py writes,
# all-MiniLM-L6-v2 at max_seq_length 128, num_negatives 5, range_min 10,
# range_max 50, margin 0.1. stpipe (a pipeline that only mines) and, with
# --python, sentence-transformers' mine_hard_negatives on the same files,
# each measured by /usr/bin/time -v.
#
#   scripts/mine_memory.sh [--python]
#
# STPIPE_SHARED overrides ../shared; STPIPE_BIN runs another stpipe binary
# instead of building this checkout's release binary; PYTHON (default
# /work/pyref/bin/python) is the reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/pyref/bin/python}"
source scripts/common.sh
python3 scripts/mine_memory_data.py "$TMP" --shared "$SHARED"

cat > "$TMP/mine.stp" <<STP
model m = Transformer("sentence-transformers/all-MiniLM-L6-v2", max_seq_length: 128) -> Pooling(mean) -> Normalize
data pairs  = tsv("pairs.tsv", header: true, quoting: none)
data corpus = tsv("corpus.tsv", header: true, quoting: none)
data mined  = mine_hard_negatives(pairs, model: m, corpus: corpus, num_negatives: 5,
                                  range_min: 10, range_max: 50, margin: 0.1)
STP

report() {
    local what="$1" file="$2"
    local rss wall
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$file")
    wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$file")
    echo "$what: peak RSS $((rss / 1024)) MiB, wall $wall"
}

/usr/bin/time -v "$BIN" --model-path "$SHARED/models" run "$TMP/mine.stp" --run-dir "$TMP/run" \
    2> "$TMP/stpipe.time" >/dev/null || { cat "$TMP/stpipe.time"; exit 1; }
grep '^data `mined`' "$TMP/stpipe.time" || true
report "stpipe" "$TMP/stpipe.time"

if [ "${1:-}" = "--python" ]; then
    cat > "$TMP/mine.py" <<'PY'
import csv, os, sys
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
tmp, shared = sys.argv[1], sys.argv[2]
def rows(name):
    with open(os.path.join(tmp, name), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
pairs = rows("pairs.tsv")
corpus = [r["text"] for r in rows("corpus.tsv")]
model = SentenceTransformer(os.path.join(shared, "models", "all-MiniLM-L6-v2"), device="cpu")
model.max_seq_length = 128
data = Dataset.from_dict({"anchor": [p["anchor"] for p in pairs], "positive": [p["positive"] for p in pairs]})
mined = mine_hard_negatives(data, model, corpus=corpus, num_negatives=5, range_min=10, range_max=50,
                            absolute_margin=0.1, batch_size=32, verbose=False)
print(f"python: {len(mined)} triplet rows")
PY
    /usr/bin/time -v "$PY" "$TMP/mine.py" "$TMP" "$SHARED" 2> "$TMP/python.time" | tail -1 \
        || { tail -20 "$TMP/python.time"; exit 1; }
    report "python" "$TMP/python.time"
fi
