#!/usr/bin/env python3
"""Check that a model directory (e.g. one written by stpipe) loads in Python sentence-transformers
and reproduces given embeddings.

    /work/pyref/bin/python scripts/roundtrip_check.py --model DIR --embeddings FILE.safetensors --sentences FILE

Loads DIR with SentenceTransformer(DIR, device="cpu"), encodes the sentences (one per line,
batch size 32), compares with the `embeddings` tensor in FILE.safetensors row by row.
Prints the min cosine and max abs diff; exits 0 only if min cosine >= 0.99999 and
max abs diff <= 1e-4 (exit 1 on mismatch, 2 on bad input).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--embeddings", type=Path, required=True)
    ap.add_argument("--sentences", type=Path, required=True)
    ap.add_argument("--tensor", default="embeddings")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--min-cosine", type=float, default=0.99999)
    ap.add_argument("--max-abs-diff", type=float, default=1e-4)
    args = ap.parse_args()

    text = args.sentences.read_text(encoding="utf8")
    sentences = text.split("\n")
    if sentences and sentences[-1] == "":
        sentences.pop()
    tensors = load_file(str(args.embeddings))
    if args.tensor not in tensors:
        print(f"no tensor {args.tensor!r} in {args.embeddings} (has {sorted(tensors)})", file=sys.stderr)
        return 2
    expected = tensors[args.tensor]
    if expected.ndim != 2 or expected.shape[0] != len(sentences):
        print(f"shape {expected.shape} does not fit {len(sentences)} sentences", file=sys.stderr)
        return 2

    model = SentenceTransformer(str(args.model), device="cpu")
    got = model.encode(sentences, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
    if got.shape != expected.shape:
        print(f"shape mismatch: python {got.shape} vs file {expected.shape}", file=sys.stderr)
        print(json.dumps({"ok": False, "python_shape": list(got.shape), "file_shape": list(expected.shape)}))
        return 1

    g = got.astype(np.float64)
    e = expected.astype(np.float64)
    cos = (g * e).sum(axis=1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(e, axis=1))
    min_cos = float(cos.min())  # NaN (zero vector) propagates and fails the check
    max_abs = float(np.abs(g - e).max())
    ok = bool(min_cos >= args.min_cosine and max_abs <= args.max_abs_diff)
    print(f"min cosine {min_cos:.9f} (row {int(np.argmin(cos))}), max abs diff {max_abs:.3e}", file=sys.stderr)
    print(
        json.dumps(
            {
                "ok": ok,
                "min_cosine": min_cos,
                "max_abs_diff": max_abs,
                "rows": int(g.shape[0]),
                "dim": int(g.shape[1]),
                "modules": [type(m).__name__ for m in model],
                "max_seq_length": model.max_seq_length,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
