#!/usr/bin/env python3
"""Python reference for stpipe's Reranking and Translation evaluators on real data,
sentence-transformers 6.2.0, CPU, all-MiniLM-L6-v2 (mean pooling, normalized) untrained.

- RerankingEvaluator: SNLI validation grouped by premise (in order of first appearance), the
  entailed hypotheses positive, the neutral and contradicting ones negative (as the `nli_rerank`
  source of pipelines/nli.stp); premises without both take no part.
- TranslationEvaluator: the first sentence of each row of stsb-multi-mt's English and German dev
  files (line-aligned), as `zip(en_dev, de_dev)` in pipelines/distill.stp.

    /work/pyref/bin/python scripts/python_rerank_translation.py

Prints one JSON line; the stpipe figures and the command are in docs/training.md.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation import (  # noqa: E402
    RerankingEvaluator,
    TranslationEvaluator,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_nli_train import read_snli  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def first_column(path: Path) -> list[str]:
    with open(path, encoding="utf8", newline="") as f:
        return [row[0] for row in csv.reader(f)]


def main() -> int:
    model = SentenceTransformer(str(SHARED / "models" / "all-MiniLM-L6-v2"), device="cpu")
    groups: dict[str, dict[str, list[str]]] = {}
    for premise, hypothesis, label in read_snli(SHARED / "data" / "snli" / "validation.tsv"):
        g = groups.setdefault(premise, {"query": premise, "positive": [], "negative": []})
        g["positive" if label == 0 else "negative"].append(hypothesis)
    rerank = RerankingEvaluator(list(groups.values()), write_csv=False, batch_size=32)(model)
    mt = SHARED / "data" / "stsb-multi-mt"
    en, de = first_column(mt / "stsb-en-dev.csv"), first_column(mt / "stsb-de-dev.csv")
    translate = TranslationEvaluator(en, de, write_csv=False, batch_size=32)(model)
    print(json.dumps({"reranking": rerank, "translation": translate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
