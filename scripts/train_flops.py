#!/usr/bin/env python3
"""FLOPs of one training pair of the sts.stp recipe, for the utilisation figures of
docs/performance.md: from the model's shapes (config.json) and the real token counts of the
STS-benchmark train sentences (the model's tokenizer, max_seq_length 128), shuffled into
batches of 16 pairs as a training epoch sees them.

Per token and layer, a training step costs 6 FLOPs per weight of the layer's matrices (2 forward,
4 backward) plus the attention products (12 * tokens-in-sequence * hidden); the embedding
lookups and the elementwise work are left out. Padded counts are what an implementation that
computes padding rows (PyTorch) spends; real counts are what stpipe's packed batches spend.

    /work/pyref/bin/python scripts/train_flops.py [--batch 16] [--shared ../shared]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from tokenizers import Tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    args = ap.parse_args()
    model = args.shared / "models" / "all-MiniLM-L6-v2"
    cfg = json.loads((model / "config.json").read_text())
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    weights_per_layer = 4 * h * h + 2 * h * i
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    rows = [l.rstrip("\n").split("\t") for l in open(args.shared / "data" / "stsbenchmark" / "sts-train.csv", encoding="utf8")]
    random.seed(42)
    random.shuffle(rows)
    real = padded = 0.0
    pairs = 0
    for b in range(0, len(rows), args.batch):
        batch = rows[b : b + args.batch]
        pairs += len(batch)
        for col in (5, 6):
            lens = [min(args.max_len, len(tok.encode(r[col]).ids)) for r in batch]
            for n in lens:
                real += n * (6 * weights_per_layer + 12 * n * h) * layers
            m = max(lens)
            padded += len(lens) * m * (6 * weights_per_layer + 12 * m * h) * layers
    print(json.dumps({
        "pairs": pairs,
        "gflop_per_pair_real_tokens": round(real / pairs / 1e9, 3),
        "gflop_per_pair_padded": round(padded / pairs / 1e9, 3),
    }))


if __name__ == "__main__":
    main()
