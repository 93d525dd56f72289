#!/usr/bin/env python3
"""Python reference for the MNRL training benchmark (scripts/bench_train.sh ... mnrl),
sentence-transformers 6.2.0 on the CPU.

Recipe: all-MiniLM-L6-v2 Transformer (max_seq_length 128) + mean Pooling,
MultipleNegativesRankingLoss (scale 20, cosine) on SNLI-validation triplets (anchor, entailment,
contradiction; grouped by premise as stpipe's `triplets`, see python_nli_train.py), batch 64,
no-duplicates batch sampler, AdamW lr 2e-5, linear schedule with 10% warmup, max_grad_norm 1,
through SentenceTransformerTrainer. No evaluation: the figure is the throughput of trainer.train().

    /work/pyref/bin/python scripts/python_mnrl_train.py --limit 1920    # 30 steps of 64

--bf16 sets the Trainer's bf16=True (the counterpart of a stage's `precision: bf16`).
Prints one JSON line at the end (`triplets_per_s`).
"""
from __future__ import annotations

import argparse
import json
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
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer import losses  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_nli_train import read_snli, triplets  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N triplets")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--bf16", action="store_true", help="the Trainer's bf16=True (torch autocast on the CPU)")
    args = ap.parse_args()

    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.modules import Pooling
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    shared = args.shared.resolve()
    rows = triplets(read_snli(shared / "data" / "snli" / "validation.tsv"))[: args.limit]
    transformers.set_seed(args.seed)
    full = SentenceTransformer(str(shared / "models" / "all-MiniLM-L6-v2"), device="cpu")
    transformer = full[0]
    transformer.max_seq_length = 128
    dim = transformer.get_word_embedding_dimension()
    model = SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode="mean")], device="cpu")
    ds = Dataset.from_dict(
        {"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows], "negative": [r[2] for r in rows]}
    )
    with tempfile.TemporaryDirectory(prefix="stpipe-mnrl-") as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=1,
            per_device_train_batch_size=args.batch_size,
            learning_rate=2e-5,
            warmup_steps=0.1,
            lr_scheduler_type="linear",
            max_grad_norm=1.0,
            optim="adamw_torch",
            seed=args.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_drop_last=False,
            use_cpu=True,
            bf16=args.bf16,
        )
        loss = losses.MultipleNegativesRankingLoss(model, scale=20.0)
        trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=ds, loss=loss)
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "impl": "python-st-trainer-mnrl",
                "bf16": args.bf16,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "triplets": len(rows),
                "train_wall_s": round(wall, 3),
                "triplets_per_s": round(len(rows) / wall, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
