#!/usr/bin/env python3
"""Python (sentence-transformers) encode throughput baseline for stpipe.

Encodes all 2,758 sentences of stsbenchmark/sts-test.csv (sentence1 then sentence2 of the
1,379 rows) with SentenceTransformer(<model>, device="cpu").encode(batch_size=32):
1 untimed warm-up run, then --runs timed runs. torch uses its default thread count.

    /work/pyref/bin/python scripts/bench_encode.py [--runs 5] [--batch-size 32]

Prints one JSON line: {"impl":"python-st","runs":[secs...],"median_s":..,"sentences_per_s":..,...}
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sts_data import read_sts  # noqa: E402


def read_sts_sentences(path: Path) -> list[str]:
    s1, s2, _ = read_sts(path)
    return s1 + s2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--model", type=Path, default=None, help="default: <shared>/models/all-MiniLM-L6-v2")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    shared = args.shared.resolve()
    model_dir = (args.model or shared / "models" / "all-MiniLM-L6-v2").resolve()
    sentences = read_sts_sentences(shared / "data" / "stsbenchmark" / "sts-test.csv")
    threads = torch.get_num_threads()
    print(f"{len(sentences)} sentences, torch.get_num_threads() = {threads}", file=sys.stderr)

    model = SentenceTransformer(str(model_dir), device="cpu")

    def once() -> float:
        t0 = time.perf_counter()
        emb = model.encode(sentences, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
        dt = time.perf_counter() - t0
        assert emb.shape[0] == len(sentences)
        return dt

    warm = once()
    print(f"warm-up: {warm:.3f}s", file=sys.stderr)
    runs = []
    for i in range(args.runs):
        runs.append(once())
        print(f"run {i + 1}: {runs[-1]:.3f}s", file=sys.stderr)
    med = statistics.median(runs)
    print(
        json.dumps(
            {
                "impl": "python-st",
                "runs": [round(r, 4) for r in runs],
                "median_s": round(med, 4),
                "sentences_per_s": round(len(sentences) / med, 2),
                "sentences": len(sentences),
                "batch_size": args.batch_size,
                "torch_threads": threads,
                "warmup_s": round(warm, 4),
                "loadavg_1m_at_end": round(os.getloadavg()[0], 2),  # the machine is shared: context for the timings
                "sentence_transformers": sentence_transformers.__version__,
                "torch": torch.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
