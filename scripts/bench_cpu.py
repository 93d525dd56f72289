#!/usr/bin/env python3
"""CPU time (user+system, whole process, all threads) of one
SentenceTransformer.encode pass over the 2,758 STS-test sentences at batch 32,
median of --runs, after one warm-up. On a shared machine wall time depends on
the other load; CPU time per pass is a steadier measure of the work done.

    /work/pyref/bin/python scripts/bench_cpu.py [--runs 3]
"""
import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sentence_transformers import SentenceTransformer  # noqa: E402

root = Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--shared", type=Path, default=root.parent / "shared")
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()
sents = []
for line in open(args.shared / "data/stsbenchmark/sts-test.csv", encoding="utf8"):
    cols = line.rstrip("\n").split("\t")
    if len(cols) >= 7:
        sents += [cols[5], cols[6]]
model = SentenceTransformer(str(args.shared / "models/all-MiniLM-L6-v2"), device="cpu")
model.encode(sents[:64], batch_size=32)
walls, cpus = [], []
for i in range(args.runs):
    w0, c0 = time.perf_counter(), time.process_time()
    model.encode(sents, batch_size=32, show_progress_bar=False)
    walls.append(time.perf_counter() - w0)
    cpus.append(time.process_time() - c0)
    print(f"run {i + 1}: {walls[-1]:.3f}s wall, {cpus[-1]:.3f}s cpu")
c = statistics.median(cpus)
print(f"python-st: median CPU time per pass {c:.3f}s = {len(sents) / c:.1f} sentences per CPU-second")
