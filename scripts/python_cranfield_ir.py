"""Python reference for pipelines/cranfield.stp: sentence-transformers'
InformationRetrievalEvaluator on the Cranfield collection with
all-MiniLM-L6-v2, the data read exactly as the pipeline reads it.

- queries: cran.qry, SMART records numbered 1, 2, 3... in file order
  (`smart(..., ids: position)`), text = the `.W` field;
- documents: cran.all.1400, ids from `.I`, text = the `.W` field;
- judgements: cranqrel, `query doc relevance` split on runs of spaces,
  rows with relevance above 0 relevant (the -1 rows are not).

Field text is the field's lines, each trimmed, joined by single spaces
(src/data/smart.rs). Prints one JSON object of the evaluator's metrics.

    /work/pyref/bin/python scripts/python_cranfield_ir.py [--shared ../shared]
"""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator  # noqa: E402


def smart(path, by_position):
    """Records of a SMART file as {id: text of .W}, in file order."""
    records = []
    field = None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith(".I"):
            rid = str(len(records) + 1) if by_position else line[2:].strip()
            records.append([rid, "", "", "", ""])
            field = None
            continue
        marker = {".T": 1, ".A": 2, ".B": 3, ".W": 4}.get(line)
        if marker is not None:
            field = marker
            continue
        if field is not None and records:
            r = records[-1]
            if r[field]:
                r[field] += " "
            r[field] += line.strip()
    return {r[0]: r[4] for r in records}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    args = ap.parse_args()
    cran = os.path.join(args.shared, "data", "cranfield")
    queries = smart(os.path.join(cran, "cran.qry"), by_position=True)
    corpus = smart(os.path.join(cran, "cran.all.1400"), by_position=False)
    relevant = {}
    with open(os.path.join(cran, "cranqrel"), encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or float(parts[2]) <= 0:
                continue
            relevant.setdefault(parts[0], set()).add(parts[1])
    model = SentenceTransformer(os.path.join(args.shared, "models", "all-MiniLM-L6-v2"), device="cpu")
    ev = InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        batch_size=32,
        accuracy_at_k=[1, 3, 5, 10],
        precision_recall_at_k=[1, 3, 5, 10, 100],
        ndcg_at_k=[1, 3, 5, 10, 100],
        mrr_at_k=[10],
        map_at_k=[100],
    )
    metrics = ev(model)
    print(json.dumps({k.replace("cosine_", "").replace("@", "_at_"): v for k, v in metrics.items()}, indent=1))


if __name__ == "__main__":
    main()
