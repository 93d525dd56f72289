#!/usr/bin/env bash
# Round trip to Python: stpipe builds and saves a model with Dense and
# Normalize (after a training step), encodes sentences with `stpipe encode`,
# and Python sentence-transformers loads the saved model and must reproduce
# the embeddings (cosine >= 0.99999, max abs diff <= 1e-4).
#
#   scripts/roundtrip.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${STPIPE_SHARED:-../shared}"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
cargo build --quiet --example roundtrip_save --bin stpipe
./target/debug/examples/roundtrip_save "$SHARED/models/all-MiniLM-L6-v2" "$WORK/model"
SENT=tests/fixtures/parity/sentences.txt
./target/debug/stpipe encode --model "$WORK/model" --format safetensors -o "$WORK/embeddings.safetensors" "$SENT"
echo "saved model: $(ls "$WORK/model" | tr '\n' ' ')"
"$PYTHON" scripts/roundtrip_check.py --model "$WORK/model" --embeddings "$WORK/embeddings.safetensors" --sentences "$SENT"
