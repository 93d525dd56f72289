"""Writes ROWS (anchor, positive, negative) rows made from the SNLI
validation sentences of ../shared/data (cycled, each row numbered so that
no two are equal) twice, to OUT/rows.parquet (zstd, row groups of 100,000
rows, as `datasets` writes them) and to OUT/rows.jsonl, for
scripts/parquet_memory.sh. Needs pyarrow.

    python scripts/parquet_memory_data.py OUT [--rows N] [--shared DIR]
"""

import argparse
import csv
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    args = ap.parse_args()
    path = os.path.join(args.shared, "data", "snli", "validation.tsv")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    premises = [r[0] for r in rows]
    hypotheses = [r[1] for r in rows]
    n = len(rows)
    cols = {"anchor": [], "positive": [], "negative": []}
    for i in range(args.rows):
        cols["anchor"].append(f"{premises[i % n]} ({i})")
        cols["positive"].append(hypotheses[i % n])
        cols["negative"].append(hypotheses[(i * 7919 + 13) % n])
    table = pa.table(cols)
    pq.write_table(table, os.path.join(args.out, "rows.parquet"), compression="zstd", row_group_size=100_000)
    with open(os.path.join(args.out, "rows.jsonl"), "w", encoding="utf-8") as f:
        for i in range(args.rows):
            f.write(json.dumps({k: cols[k][i] for k in cols}) + "\n")


if __name__ == "__main__":
    main()
