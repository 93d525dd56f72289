"""Inputs of scripts/mine_memory.sh: every distinct sentence of the shared
data sets as one corpus, and (anchor, positive) pairs to mine negatives for.

Writes two TSV files (header `text`, and header `anchor positive`; tabs and
newlines inside a text become spaces) into OUT_DIR and prints their row
counts. Standard library only.

- corpus: sentence1/sentence2 of STS benchmark train/dev/test, SNLI
  validation premises and hypotheses, MRPC train/validation/test sentences,
  stsb-multi-mt English and German sentences of all splits, Cranfield
  queries and abstracts (the `.W` fields), each distinct text once;
- pairs: the first N (default 10,000) distinct (sentence1, sentence2)
  pairs of STS train, MRPC train and SNLI entailments, in that order.

    python3 scripts/mine_memory_data.py OUT_DIR [--shared ../shared] [--pairs 10000]
"""

import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def sts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 7:
                yield cols[5], cols[6], float(cols[4])


def tsv_header(path, quoting):
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t", quoting=quoting)


def multi_mt(path):
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2:
                yield row[0], row[1]


def smart_texts(path):
    texts, field = [], None
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            line = line.rstrip("\r")
            if line.startswith(".I"):
                texts.append("")
                field = None
            elif line in (".T", ".A", ".B", ".W"):
                field = line
            elif field == ".W" and texts:
                texts[-1] = (texts[-1] + " " + line.strip()).strip()
    return texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--pairs", type=int, default=10000)
    args = ap.parse_args()
    d = os.path.join(args.shared, "data")
    corpus = {}
    pairs = {}

    def add(*texts):
        for t in texts:
            t = " ".join(t.split())
            if t:
                corpus.setdefault(t, None)

    def pair(a, p):
        a, p = " ".join(a.split()), " ".join(p.split())
        if a and p and a != p and len(pairs) < args.pairs:
            pairs.setdefault((a, p), None)

    for split in ("train", "dev", "test"):
        for s1, s2, score in sts(os.path.join(d, "stsbenchmark", f"sts-{split}.csv")):
            add(s1, s2)
            if split == "train":
                pair(s1, s2)
    for split in ("train", "validation", "test"):
        for row in tsv_header(os.path.join(d, "mrpc", f"{split}.tsv"), csv.QUOTE_MINIMAL):
            add(row["sentence1"], row["sentence2"])
            if split == "train":
                pair(row["sentence1"], row["sentence2"])
    for row in tsv_header(os.path.join(d, "snli", "validation.tsv"), csv.QUOTE_NONE):
        add(row["premise"], row["hypothesis"])
        if row["label"] == "0":
            pair(row["premise"], row["hypothesis"])
    for lang in ("en", "de"):
        for split in ("train", "dev", "test"):
            for s1, s2 in multi_mt(os.path.join(d, "stsb-multi-mt", f"stsb-{lang}-{split}.csv")):
                add(s1, s2)
    for name in ("cran.qry", "cran.all.1400"):
        add(*smart_texts(os.path.join(d, "cranfield", name)))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "corpus.tsv"), "w", encoding="utf-8") as f:
        f.write("text\n")
        for t in corpus:
            f.write(t + "\n")
    with open(os.path.join(args.out, "pairs.tsv"), "w", encoding="utf-8") as f:
        f.write("anchor\tpositive\n")
        for a, p in pairs:
            f.write(f"{a}\t{p}\n")
    print(f"corpus {len(corpus)} texts, pairs {len(pairs)}")


if __name__ == "__main__":
    main()
