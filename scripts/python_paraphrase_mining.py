"""Python reference for the ParaphraseMining evaluator on real data:
sentence-transformers' ParaphraseMiningEvaluator with all-MiniLM-L6-v2 (mean
pooling, as released) on an MRPC split read as stpipe reads it: the
sentences are the distinct texts of both columns (each text its own id),
the pairs labelled 1 are the paraphrases. Prints one JSON object per split.

    /work/pyref/bin/python scripts/python_paraphrase_mining.py [--shared ../shared] [SPLIT...]
"""

import argparse
import csv
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation import ParaphraseMiningEvaluator  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("splits", nargs="*", default=["validation", "test"])
    args = ap.parse_args()
    model = SentenceTransformer(os.path.join(args.shared, "models", "all-MiniLM-L6-v2"), device="cpu")
    for split in args.splits:
        sentences, dups = {}, []
        with open(os.path.join(args.shared, "data", "mrpc", f"{split}.tsv"), encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                a, b = row["sentence1"], row["sentence2"]
                sentences.setdefault(a, a)
                sentences.setdefault(b, b)
                if row["label"] == "1":
                    dups.append((a, b))
        ev = ParaphraseMiningEvaluator(sentences, dups, write_csv=False)
        print(json.dumps({"split": split, **ev(model)}))


if __name__ == "__main__":
    main()
