#!/usr/bin/env python3
"""Python reference for stpipe's adaptive-layer recipe (pipelines/adaptive-layer.stp),
sentence-transformers 6.2.0, CPU.

Recipe: all-MiniLM-L6-v2 (max_seq_length 128) + mean Pooling + Normalize;
AdaptiveLayerLoss(MultipleNegativesRankingLoss (scale 20, cosine)) with its defaults (one earlier
layer per batch, KL temperature 0.3) on the SNLI-validation triplets grouped by premise (as stpipe's
`triplets`, see python_nli_train.py), batch 64, one epoch through `SentenceTransformer.old_fit`,
AdamW 2e-5, WarmupLinear 10%, seed 42. STS benchmark dev spearman_cosine with all 6 layers and
with the model cut after 1 to 5 layers (its first k BERT layers kept, as stpipe's
`truncate_layers`), before and after training.

    /work/pyref/bin/python scripts/python_adaptive_layer_train.py           # the recipe
    /work/pyref/bin/python scripts/python_adaptive_layer_train.py --plain   # MNRL alone, for comparison

stpipe samples batches with `no_duplicates`; the DataLoader here shuffles. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_nli_train import build_model, fit, read_snli, triplets  # noqa: E402
from sts_data import read_sts  # noqa: E402

import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import InputExample  # noqa: E402
from sentence_transformers.sentence_transformer import losses  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation.embedding_similarity import (  # noqa: E402
    EmbeddingSimilarityEvaluator,
)
from torch.utils.data import DataLoader  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS = [6, 1, 2, 3, 4, 5]


def cut(model, k):
    """A copy of the model keeping its first k encoder layers."""
    m = copy.deepcopy(model)
    enc = m[0].auto_model.encoder
    enc.layer = enc.layer[:k]
    m[0].auto_model.config.num_hidden_layers = k
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--plain", action="store_true", help="MultipleNegativesRankingLoss without AdaptiveLayerLoss")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    shared = args.shared.resolve()
    transformers.set_seed(args.seed)
    trips = triplets(read_snli(shared / "data" / "snli" / "validation.tsv"))
    d1, d2, dl = read_sts(shared / "data" / "stsbenchmark" / "sts-dev.csv")
    model = build_model(shared / "models" / "all-MiniLM-L6-v2", 0, 128, "mean")
    ev = EmbeddingSimilarityEvaluator(d1, d2, dl, batch_size=32, name="dev", write_csv=False)

    def dev() -> dict[int, float]:
        model.eval()
        out = {}
        for k in LAYERS:
            m = model if k == 6 else cut(model, k)
            m.eval()
            res = ev(m)
            out[k] = round(float(res[next(x for x in res if x.endswith("spearman_cosine"))]), 6)
        return out

    before = dev()
    print(f"triplets {len(trips)}; before: {before}", file=sys.stderr)
    loss = losses.MultipleNegativesRankingLoss(model, scale=20.0)
    if not args.plain:
        loss = losses.AdaptiveLayerLoss(model, loss)
    loader = DataLoader([InputExample(texts=list(t)) for t in trips], shuffle=True, batch_size=args.batch)
    train_s = fit(model, [(loader, loss)], len(loader), args.lr, 0.1)
    after = dev()
    print(f"after: {after}", file=sys.stderr)
    print(
        json.dumps(
            {
                "impl": "python-st-old_fit",
                "sentence_transformers": sentence_transformers.__version__,
                "loss": "MultipleNegativesRankingLoss" if args.plain else "AdaptiveLayerLoss(MultipleNegativesRankingLoss)",
                "triplets": len(trips),
                "steps": len(loader),
                "before_spearman_cosine": before,
                "after_spearman_cosine": after,
                "train_wall_s": round(train_s, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
