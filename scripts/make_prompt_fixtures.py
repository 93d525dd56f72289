#!/usr/bin/env python3
"""Reference embeddings with prompts, for stpipe's prompt tests.

    /work/pyref/bin/python scripts/make_prompt_fixtures.py [--out tests/fixtures/arch/prompts.json]

For the tiny `bert` and `roberta` fixture models (tests/fixtures/arch/NAME/model, written by
scripts/make_arch_fixtures.py), encodes the first 12 lines of tests/fixtures/parity/sentences.txt
with `prompt="query: "`, once with the Pooling module's `include_prompt` True and once False,
and records the prompt length sentence-transformers computes. Writes one JSON file:

    {"prompt": "query: ", "sentences": [...],
     "models": {NAME: {"prompt_length": int, "include": [[...]], "exclude": [[...]]}}}
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROMPT = "query: "


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests/fixtures/arch/prompts.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    sentences = (REPO / "tests/fixtures/parity/sentences.txt").read_text(encoding="utf8").splitlines()[:12]
    out = {"prompt": PROMPT, "sentences": sentences, "models": {}}
    for name in ["bert", "roberta"]:
        model = SentenceTransformer(str(REPO / "tests/fixtures/arch" / name / "model"), device="cpu")
        pooling = model[1]
        rec = {"prompt_length": model[0]._get_prompt_length(PROMPT)}
        for key, include in [("include", True), ("exclude", False)]:
            pooling.include_prompt = include
            emb = model.encode(sentences, prompt=PROMPT, batch_size=32, convert_to_numpy=True)
            rec[key] = [[float(x) for x in row] for row in emb]
        out["models"][name] = rec
        print(name, "prompt_length", rec["prompt_length"])
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf8")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
