#!/usr/bin/env python3
"""Python reference for stpipe's unsupervised recipes, sentence-transformers 6.2.0, CPU.

    /work/pyref/bin/python scripts/python_unsupervised_train.py tsdae   # pipelines/tsdae.stp
    /work/pyref/bin/python scripts/python_unsupervised_train.py ct      # pipelines/contrastive-tension.stp

Both train all-MiniLM-L6-v2 (max_seq_length 128) on the first sentence of every STS-benchmark
training row (5,749 sentences), one epoch through `SentenceTransformer.old_fit`, seed 42, and
report STS dev (before and after) and test spearman_cosine:

- tsdae: CLS pooling; DenoisingAutoEncoderLoss (decoder tied to the encoder, loaded by transformers
  from the same directory: its cross-attentions and head start random) on
  DenoisingAutoEncoderDataset pairs, deletion ratio 0.6 with NLTK's Treebank tokenizer and
  detokenizer (`word_tokenize` needs the punkt data, which cannot be downloaded here; the STS
  sentences are single sentences, for which the two split alike); batch 8, constant lr 3e-5, no
  weight decay.
- ct: mean pooling; ContrastiveTensionLossInBatchNegatives (scale 20, cosine); batch 16, AdamW 5e-5,
  WarmupLinear 10%, weight decay 0.01.

Gradient clipping at norm 1 as stpipe's stages. Needs `nltk` for tsdae (pip install nltk).
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_nli_train import embedding_dim  # noqa: E402
from sts_data import read_sts  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import InputExample, SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer import losses  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation.embedding_similarity import (  # noqa: E402
    EmbeddingSimilarityEvaluator,
)
from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def delete(text: str, del_ratio: float = 0.6) -> str:
    """DenoisingAutoEncoderDataset.delete with the Treebank tokenizer in place of word_tokenize."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer, TreebankWordTokenizer

    words = TreebankWordTokenizer().tokenize(text)
    n = len(words)
    if n == 0:
        return text
    keep = np.random.rand(n) > del_ratio
    if sum(keep) == 0:
        keep[np.random.choice(n)] = True
    return TreebankWordDetokenizer().detokenize(np.array(words)[keep])


class Damaged(Dataset):
    """(damaged, original) pairs, damaged anew at every access."""

    def __init__(self, sentences):
        self.sentences = sentences

    def __len__(self):
        return len(self.sentences)

    def __getitem__(self, i):
        s = self.sentences[i]
        return InputExample(texts=[delete(s), s])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", choices=["tsdae", "ct"])
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N sentences only")
    ap.add_argument("--save", type=Path, default=None, help="save the trained model here")
    args = ap.parse_args()

    shared = args.shared.resolve()
    transformers.set_seed(args.seed)
    torch.set_num_threads(2)
    sts = shared / "data" / "stsbenchmark"
    sentences, _, _ = read_sts(sts / "sts-train.csv")
    sentences = sentences[: args.limit] if args.limit else sentences
    dev = EmbeddingSimilarityEvaluator(*read_sts(sts / "sts-dev.csv"), batch_size=32, name="dev", write_csv=False)
    test = EmbeddingSimilarityEvaluator(*read_sts(sts / "sts-test.csv"), batch_size=32, name="test", write_csv=False)

    full = SentenceTransformer(str(shared / "models" / "all-MiniLM-L6-v2"), device="cpu")
    transformer = full[0]
    transformer.max_seq_length = 128
    pooling = Pooling(embedding_dim(transformer), pooling_mode="cls" if args.recipe == "tsdae" else "mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")

    def spearman(ev) -> float:
        res = ev(model)
        return round(float(res[next(k for k in res if k.endswith("spearman_cosine"))]), 6)

    before = spearman(dev)
    if args.recipe == "tsdae":
        loss = losses.DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
        loader = DataLoader(Damaged(sentences), batch_size=8, shuffle=True, drop_last=False)
        settings = dict(scheduler="constantlr", warmup_steps=0, optimizer_params={"lr": 3e-5}, weight_decay=0.0)
    else:
        loss = losses.ContrastiveTensionLossInBatchNegatives(model, scale=20.0)
        examples = [InputExample(texts=[s]) for s in sentences]
        loader = DataLoader(examples, batch_size=16, shuffle=True, drop_last=False)
        steps = len(loader)
        settings = dict(
            scheduler="WarmupLinear",
            warmup_steps=int(np.ceil(0.1 * steps)),
            optimizer_params={"lr": 5e-5},
            weight_decay=0.01,
        )
    t0 = time.perf_counter()
    model.old_fit(
        train_objectives=[(loader, loss)],
        epochs=1,
        optimizer_class=torch.optim.AdamW,
        max_grad_norm=1,
        show_progress_bar=False,
        **settings,
    )
    train_s = time.perf_counter() - t0
    model.eval()
    if args.save:
        model.save(str(args.save))
    out = {
        "impl": "python-st-old_fit",
        "sentence_transformers": sentence_transformers.__version__,
        "recipe": args.recipe,
        "sentences": len(sentences),
        "steps": len(loader),
        "dev_before": before,
        "dev_after": spearman(dev),
        "test_after": spearman(test),
        "train_wall_s": round(train_s, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
