#!/usr/bin/env bash
# Round trip of every architecture to Python: for each tiny fixture model of
# tests/fixtures/arch (bert, distilbert, mpnet, roberta, xlm-roberta,
# camembert, modernbert), stpipe fine-tunes it for 4 steps on the STS
# benchmark (CosineSimilarityLoss, dropout on) and saves it, `stpipe encode`
# embeds the 300 parity sentences, and Python sentence-transformers loads the
# saved directory and must reproduce those embeddings (cosine >= 0.99999).
#
#   scripts/arch_roundtrip.sh [WORK_DIR]
#
# STPIPE_SHARED overrides ../shared; PYTHON overrides /work/pyref/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="$(realpath "${STPIPE_SHARED:-../shared}")"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
WORK="$(realpath -m "${1:-$(mktemp -d)}")"
REPO="$(pwd)"
SENT="$REPO/tests/fixtures/parity/sentences.txt"
mkdir -p "$WORK"
cargo build --release --quiet --bin stpipe
STPIPE="$REPO/target/release/stpipe"
status=0
for arch in bert distilbert mpnet roberta xlm-roberta camembert modernbert; do
    dir="$WORK/$arch"
    rm -rf "$dir" && mkdir -p "$dir"
    cat > "$dir/train.stp" <<STP
model m = Transformer("$REPO/tests/fixtures/arch/$arch/model") -> Pooling(mean)
data sts = tsv("$SHARED/data/stsbenchmark/sts-train.csv", header: false, quoting: none)
           { sentence1: col(5), sentence2: col(6), score: col(4) / 5.0 }
objective sim = CosineSimilarityLoss(m) on sts (batch_size: 16)
train m { objectives: [sim]
  max_steps: 4
  optimizer: AdamW(lr: 1e-3) }
save m to "model"
STP
    "$STPIPE" run "$dir/train.stp" --run-dir "$dir/run" --limit 64 --quiet
    "$STPIPE" encode --model "$dir/model" --format safetensors -o "$dir/embeddings.safetensors" "$SENT"
    echo "== $arch: saved $(ls "$dir/model" | tr '\n' ' ')"
    if ! "$PYTHON" scripts/roundtrip_check.py --model "$dir/model" --embeddings "$dir/embeddings.safetensors" --sentences "$SENT"; then
        status=1
    fi
done
exit $status
