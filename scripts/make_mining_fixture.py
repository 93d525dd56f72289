"""Reference for `mine_hard_negatives`: sentence-transformers'
`util.mine_hard_negatives` on Cranfield pairs with all-MiniLM-L6-v2, written
as a small fixture that tests/mining.rs compares stpipe's mined rows with.

The data are read exactly as tests/mining.rs's pipeline reads them:

- queries: cran.qry numbered by position (`smart(..., ids: position)`);
- corpus: the first 300 records of cran.all.1400 (`limit 300`);
- pairs: `relevant_pairs(queries, corpus: docs, relevant: qrels)`, one per
  distinct relevant judgement (relevance above 0) in judgement order whose
  document is among those 300.

Two settings are mined (see SETTINGS below), each as `labeled-pair` rows
with `output_scores=True`, so the fixture holds both the choice of
negatives and their similarities. Each line of the fixture is
`setting <TAB> sha256(query)[:16] <TAB> sha256(text)[:16] <TAB> score`.

    /work/pyref/bin/python scripts/make_mining_fixture.py [--shared ../shared]
"""

import argparse
import hashlib
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.util import mine_hard_negatives  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from python_cranfield_ir import smart  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "mining", "cranfield-minilm.tsv")
DOCS = 300
# name -> keyword arguments of mine_hard_negatives (the pipeline in
# tests/mining.rs writes the same settings).
SETTINGS = {
    "top": dict(num_negatives=2, range_min=1, range_max=30, relative_margin=0.05, max_score=0.9),
    "wide": dict(num_negatives=3, range_min=0, absolute_margin=0.02, min_score=0.2),
}


def short(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    args = ap.parse_args()
    cran = os.path.join(args.shared, "data", "cranfield")
    queries = smart(os.path.join(cran, "cran.qry"), by_position=True)
    docs = list(smart(os.path.join(cran, "cran.all.1400"), by_position=False).items())[:DOCS]
    doc_text = dict(docs)
    pairs, seen = [], set()
    with open(os.path.join(cran, "cranqrel"), encoding="utf-8") as f:
        for line in f:
            q, d, rel = line.split()[:3]
            if float(rel) <= 0 or q not in queries or d not in doc_text or (q, d) in seen:
                continue
            seen.add((q, d))
            pairs.append((queries[q], doc_text[d]))
    model = SentenceTransformer(os.path.join(args.shared, "models", "all-MiniLM-L6-v2"), device="cpu")
    model.max_seq_length = 128
    data = Dataset.from_dict({"query": [p[0] for p in pairs], "document": [p[1] for p in pairs]})
    lines = []
    for name, kw in SETTINGS.items():
        mined = mine_hard_negatives(
            data,
            model,
            corpus=[t for _, t in docs],
            output_format="labeled-pair",
            output_scores=True,
            batch_size=32,
            verbose=False,
            **kw,
        )
        for row in mined:
            lines.append(f"{name}\t{short(row['query'])}\t{short(row['document'])}\t{row['score']:.7f}")
        print(f"{name}: {len(pairs)} pairs, {len(mined)} rows")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
