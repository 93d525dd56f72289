#!/usr/bin/env python3
"""Python side of scripts/bench_first_step.sh: the sts.stp recipe through
SentenceTransformerTrainer (as scripts/python_sts_train.py), stopped at the end of the first
optimizer step; prints the wall-clock time (time.time()) at that moment and exits.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

from datasets import Dataset  # noqa: E402
from sentence_transformers import (  # noqa: E402
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses.cosine_similarity import CosineSimilarityLoss  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_sts_train import build_model  # noqa: E402
from sts_data import read_sts  # noqa: E402


class StopAtFirstStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        print(f"{time.time():.3f}", flush=True)
        os._exit(0)


def main() -> None:
    shared = Path(sys.argv[1]).resolve()
    model = build_model(shared / "models" / "all-MiniLM-L6-v2")
    s1, s2, y = read_sts(shared / "data" / "stsbenchmark" / "sts-train.csv", None)
    ds = Dataset.from_dict({"sentence1": s1, "sentence2": s2, "label": y})
    with tempfile.TemporaryDirectory() as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=1,
            per_device_train_batch_size=16,
            learning_rate=2e-5,
            warmup_steps=0.1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=42,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=ds, loss=CosineSimilarityLoss(model), callbacks=[StopAtFirstStep()]
        )
        trainer.train()


if __name__ == "__main__":
    main()
