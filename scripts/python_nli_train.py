#!/usr/bin/env python3
"""Python reference for stpipe's NLI recipe (pipelines/nli.stp), sentence-transformers 6.2.0, CPU.

Recipe: all-MiniLM-L6-v2 Transformer (max_seq_length 128) + Pooling (--pooling, mean by default)
[+ Dense(N, tanh)] + Normalize;
MultipleNegativesRankingLoss (scale 20, cosine) on SNLI-validation triplets grouped by premise
(anchor, entailment, contradiction; the k-th entailment of a premise paired with its (k mod n)-th
contradiction, premises in order of first appearance, as stpipe's `triplets`), plus SoftmaxLoss
(3 labels, on (u, v, |u - v|)) on the labelled pairs, round robin through `SentenceTransformer.old_fit`
(the v2 `fit` loop kept in 6.x), AdamW, WarmupLinear 10%. STS benchmark dev spearman_cosine
before and after training.

    /work/pyref/bin/python scripts/python_nli_train.py --pooling cls    # the recipe of pipelines/nli.stp
    /work/pyref/bin/python scripts/python_nli_train.py                  # the same on MiniLM's mean pooling
    /work/pyref/bin/python scripts/python_nli_train.py --no-softmax     # MNRL alone

stpipe runs one AdamW and one schedule over all 100 steps; old_fit gives each objective its own
optimizer and schedule over its 50 steps. Measured results are in docs/training.md.

Prints one JSON line at the end.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import InputExample, SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer import losses  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation.embedding_similarity import (  # noqa: E402
    EmbeddingSimilarityEvaluator,
)
from torch.utils.data import DataLoader  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sts_data import read_sts  # noqa: E402


def read_snli(path: Path) -> list[tuple[str, str, int]]:
    with open(path, encoding="utf8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["premise"], r["hypothesis"], int(r["label"])) for r in rows]


def triplets(pairs: list[tuple[str, str, int]]) -> list[tuple[str, str, str]]:
    order: list[str] = []
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for p, h, y in pairs:
        if p not in groups:
            order.append(p)
            groups[p] = ([], [])
        if y == 0:
            groups[p][0].append(h)
        elif y == 2:
            groups[p][1].append(h)
    out = []
    for p in order:
        pos, neg = groups[p]
        if neg:
            out += [(p, h, neg[k % len(neg)]) for k, h in enumerate(pos)]
    return out


def embedding_dim(m) -> int:
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        if hasattr(m, name):
            return int(getattr(m, name)())
    raise SystemExit(f"cannot get the embedding dimension of {type(m).__name__}")


def build_model(model_dir: Path, dense: int, max_seq_length: int, pooling_mode: str) -> SentenceTransformer:
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling

    full = SentenceTransformer(str(model_dir), device="cpu")
    transformer = full[0]
    transformer.max_seq_length = max_seq_length
    pooling = Pooling(embedding_dim(transformer), pooling_mode=pooling_mode)
    modules = [transformer, pooling]
    if dense:
        modules.append(Dense(embedding_dim(pooling), dense, activation_function=torch.nn.Tanh()))
    modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu")


def fit(model: SentenceTransformer, objectives: list, steps: int, lr: float, warmup_ratio: float, epochs: int = 1) -> float:
    """One `old_fit` of `objectives` (AdamW at `lr`, WarmupLinear over `warmup_ratio` of `steps`,
    weight decay 0.01, gradient clipping at 1, as stpipe's stages); returns the seconds it took."""
    t0 = time.perf_counter()
    model.old_fit(
        train_objectives=objectives,
        epochs=epochs,
        scheduler="WarmupLinear",
        warmup_steps=math.ceil(steps * warmup_ratio),
        optimizer_class=torch.optim.AdamW,
        optimizer_params={"lr": lr},
        weight_decay=0.01,
        max_grad_norm=1,
        show_progress_bar=False,
    )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--dense", type=int, default=0, help="add Dense(N, tanh) after pooling (0: none)")
    ap.add_argument("--no-softmax", action="store_true")
    ap.add_argument("--no-mnrl", action="store_true")
    ap.add_argument("--mnrl-batch", type=int, default=64)
    ap.add_argument("--softmax-batch", type=int, default=16)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--pooling", choices=["mean", "cls", "max"], default="mean")
    ap.add_argument("--no-hard-negatives", action="store_true", help="MNRL on (premise, entailment) pairs")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    shared = args.shared.resolve()
    transformers.set_seed(args.seed)
    pairs = read_snli(shared / "data" / "snli" / "validation.tsv")
    trips = triplets(pairs)
    d1, d2, dl = read_sts(shared / "data" / "stsbenchmark" / "sts-dev.csv")
    model = build_model(shared / "models" / "all-MiniLM-L6-v2", args.dense, 128, args.pooling)
    evaluator = EmbeddingSimilarityEvaluator(d1, d2, dl, batch_size=32, name="sts-dev", write_csv=False)

    def dev() -> float:
        res = evaluator(model)
        return float(res[next(k for k in res if k.endswith("spearman_cosine"))])

    before = dev()
    print(f"pairs {len(pairs)}, triplets {len(trips)}; before: {before:.6f}", file=sys.stderr)
    objectives = []
    if not args.no_mnrl:
        ex = [InputExample(texts=list(t[:2] if args.no_hard_negatives else t)) for t in trips]
        objectives.append(
            (
                DataLoader(ex, shuffle=True, batch_size=args.mnrl_batch),
                losses.MultipleNegativesRankingLoss(model, scale=args.scale),
            )
        )
    if not args.no_softmax:
        ex = [InputExample(texts=[p, h], label=y) for p, h, y in pairs]
        objectives.append(
            (
                DataLoader(ex, shuffle=True, batch_size=args.softmax_batch),
                losses.SoftmaxLoss(model, embedding_dim(model), num_labels=3),
            )
        )
    steps = min(len(d) for d, _ in objectives) * args.epochs
    train_s = fit(model, objectives, steps, args.lr, args.warmup_ratio, args.epochs)
    model.eval()
    after = dev()
    print(f"after: {after:.6f}", file=sys.stderr)
    print(
        json.dumps(
            {
                "impl": "python-st-old_fit",
                "sentence_transformers": sentence_transformers.__version__,
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "triplets": len(trips),
                "pairs": len(pairs),
                "steps_per_objective": steps,
                "before_spearman_cosine": round(before, 6),
                "after_spearman_cosine": round(after, 6),
                "train_wall_s": round(train_s, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
