#!/usr/bin/env bash
# Peak resident memory of one training step at a large batch, uncached
# against cached: MultipleNegativesRankingLoss and
# CachedMultipleNegativesRankingLoss (mini_batch_size 32) on SNLI triplets
# with all-MiniLM-L6-v2, batch BATCH (3 x BATCH texts a step), STEPS steps,
# RUNS runs each, alternating; prints each run's peak RSS and seconds (from
# /usr/bin/time -v) and the medians. max_seq_length is SEQ (default 64:
# at 128 the checker's worst-case estimate for the uncached loss at batch
# 256, 24 GiB, refuses it on a 23 GiB machine).
#
#   scripts/grad_cache_memory.sh [BATCH] [STEPS] [RUNS] [SEQ]
#
# STPIPE_SHARED overrides ../shared; STPIPE_BIN runs another stpipe binary
# instead of building this checkout's release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH="${1:-256}"
STEPS="${2:-2}"
RUNS="${3:-3}"
SEQ="${4:-64}"
source scripts/common.sh
echo "== batch $BATCH, $STEPS steps"

for loss in "MultipleNegativesRankingLoss(m)" "CachedMultipleNegativesRankingLoss(m, mini_batch_size: 32)"; do
    name="${loss%%(*}"
    cat > "$TMP/$name.stp" <<STP
model m = Transformer("sentence-transformers/all-MiniLM-L6-v2", max_seq_length: $SEQ) -> Pooling(mean)
data pairs = tsv("$SHARED/data/snli/validation.tsv", header: true)
             { premise: col("premise"), hypothesis: col("hypothesis"), label: col("label") }
data triplets = triplets(pairs, by: premise, positive: 0, negative: 2)
objective o = $loss on triplets (batch_size: $BATCH)
train m { objectives: [o], seed: 1 }
STP
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A rss secs
for r in $(seq 1 "$RUNS"); do
    for name in MultipleNegativesRankingLoss CachedMultipleNegativesRankingLoss; do
        /usr/bin/time -v "$BIN" --model-path "$SHARED/models" run "$TMP/$name.stp" \
            --max-steps "$STEPS" --quiet --run-dir "$TMP/run-$name-$r" > "$TMP/out" 2> "$TMP/time" || {
            cat "$TMP/out" "$TMP/time"; exit 1; }
        kb=$(grep 'Maximum resident' "$TMP/time" | awk '{print $NF}')
        s=$(grep 'Elapsed (wall' "$TMP/time" | awk '{print $NF}' | awk -F: '{print ($1*60)+$2}')
        rss[$name]+="$((kb / 1024)) "
        secs[$name]+="$s "
        echo "$name run $r: peak RSS $((kb / 1024)) MiB, $s s"
    done
done
for name in MultipleNegativesRankingLoss CachedMultipleNegativesRankingLoss; do
    # shellcheck disable=SC2086
    echo "median $name: peak RSS $(median ${rss[$name]}) MiB, $(median ${secs[$name]}) s"
done
