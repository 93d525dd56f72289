#!/usr/bin/env python3
"""Python reference for stpipe's STS training recipe (sentence-transformers 6.2.0, CPU).

Recipe: all-MiniLM-L6-v2 Transformer (the shared model's own max_seq_length, 256) + mean Pooling
(no Normalize), CosineSimilarityLoss on the 5,749 STS-benchmark train pairs (label = score / 5),
batch 16, 1 epoch, AdamW lr 2e-5, weight decay 0.01 (not on bias/LayerNorm), linear schedule with
10% warmup (ceil(0.1 * steps) = 36 steps), max_grad_norm 1, seed 42, shuffled.
EmbeddingSimilarityEvaluator (spearman_cosine) on the 1,379 test pairs before and after training.

    /work/pyref/bin/python scripts/python_sts_train.py                 # full recipe
    /work/pyref/bin/python scripts/python_sts_train.py --limit 64      # smoke test (64 train + 64 test pairs)

--api trainer (default) uses SentenceTransformerTrainer + SentenceTransformerTrainingArguments;
--api old_fit uses SentenceTransformer.old_fit, the v2 `fit` loop kept verbatim in 6.x.
--bf16 sets the Trainer's bf16=True (torch autocast to bf16 on the CPU; the counterpart of a
stage's `precision: bf16`).
Prints one JSON line at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402
import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation.embedding_similarity import (  # noqa: E402
    EmbeddingSimilarityEvaluator,
)
from sentence_transformers.sentence_transformer.losses.cosine_similarity import CosineSimilarityLoss  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sts_data import read_sts  # noqa: E402


def build_model(model_dir: Path) -> SentenceTransformer:
    """Transformer + mean Pooling taken from the shared model dir, without its Normalize module."""
    full = SentenceTransformer(str(model_dir), device="cpu")
    transformer, pooling = full[0], full[1]
    assert type(transformer).__name__ == "Transformer", type(transformer)
    assert type(pooling).__name__ == "Pooling" and pooling.pooling_mode == "mean", pooling
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def spearman(evaluator: EmbeddingSimilarityEvaluator, model: SentenceTransformer) -> float:
    res = evaluator(model)
    key = next(k for k in res if k.endswith("spearman_cosine"))
    return float(res[key])


def train_with_trainer(model, s1, s2, labels, args, out_dir: str) -> float:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    ds = Dataset.from_dict({"sentence1": s1, "sentence2": s2, "label": labels})
    targs = SentenceTransformerTrainingArguments(
        output_dir=out_dir,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=args.warmup_ratio,  # float in [0,1): ratio -> ceil(ratio * total_steps)
        max_grad_norm=1.0,
        optim="adamw_torch",
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,  # = torch.optim.AdamW defaults, as fit() used
        seed=args.seed,
        data_seed=args.seed,
        dataloader_drop_last=False,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=50,
        disable_tqdm=True,
        use_cpu=True,
        bf16=args.bf16,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=targs, train_dataset=ds, loss=CosineSimilarityLoss(model)
    )
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def train_with_old_fit(model, s1, s2, labels, args) -> float:
    from torch.utils.data import DataLoader
    from sentence_transformers import InputExample

    examples = [InputExample(texts=[a, b], label=y) for a, b, y in zip(s1, s2, labels)]
    torch.manual_seed(args.seed)
    loader = DataLoader(examples, shuffle=True, batch_size=args.batch_size)
    warmup = math.ceil(len(loader) * args.epochs * args.warmup_ratio)
    t0 = time.perf_counter()
    model.old_fit(
        train_objectives=[(loader, CosineSimilarityLoss(model))],
        epochs=args.epochs,
        scheduler="WarmupLinear",
        warmup_steps=warmup,
        optimizer_class=torch.optim.AdamW,
        optimizer_params={"lr": args.lr},
        weight_decay=args.weight_decay,
        max_grad_norm=1,
        show_progress_bar=False,
    )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--model", type=Path, default=None, help="default: <shared>/models/all-MiniLM-L6-v2")
    ap.add_argument("--api", choices=["trainer", "old_fit"], default="trainer")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N train and N test pairs")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--save", type=Path, default=None, help="save the trained model here")
    ap.add_argument("--bf16", action="store_true", help="the Trainer's bf16=True (trainer api only)")
    args = ap.parse_args()
    if args.bf16 and args.api != "trainer":
        ap.error("--bf16 needs --api trainer")

    shared = args.shared.resolve()
    model_dir = (args.model or shared / "models" / "all-MiniLM-L6-v2").resolve()
    sts = shared / "data" / "stsbenchmark"

    transformers.set_seed(args.seed)
    tr1, tr2, trl = read_sts(sts / "sts-train.csv", args.limit)
    te1, te2, tel = read_sts(sts / "sts-test.csv", args.limit)
    print(f"train pairs {len(tr1)}, test pairs {len(te1)}, torch threads {torch.get_num_threads()}", file=sys.stderr)

    model = build_model(model_dir)
    print(f"model: {model}, max_seq_length={model.max_seq_length}", file=sys.stderr)
    evaluator = EmbeddingSimilarityEvaluator(te1, te2, tel, batch_size=16, name="sts-test", write_csv=False)

    before = spearman(evaluator, model)
    print(f"before: spearman_cosine {before:.6f}", file=sys.stderr)

    transformers.set_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="stpipe-sts-") as tmp:
        t0 = time.perf_counter()
        if args.api == "trainer":
            train_s = train_with_trainer(model, tr1, tr2, trl, args, tmp)
        else:
            train_s = train_with_old_fit(model, tr1, tr2, trl, args)
        total_s = time.perf_counter() - t0
    model.eval()

    after = spearman(evaluator, model)
    print(f"after: spearman_cosine {after:.6f}", file=sys.stderr)
    if args.save:
        model.save(str(args.save))

    steps = math.ceil(len(tr1) / args.batch_size) * args.epochs
    print(
        json.dumps(
            {
                "impl": f"python-st-{args.api}",
                "bf16": args.bf16,
                "sentence_transformers": sentence_transformers.__version__,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "train_pairs": len(tr1),
                "test_pairs": len(te1),
                "steps": steps,
                "before_spearman_cosine": round(before, 6),
                "after_spearman_cosine": round(after, 6),
                "train_wall_s": round(train_s, 3),  # the train()/old_fit() call alone
                "train_total_s": round(total_s, 3),  # incl. dataset + trainer construction
                "pairs_per_s": round(len(tr1) * args.epochs / train_s, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
