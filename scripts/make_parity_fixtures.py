#!/usr/bin/env python3
"""Produce the Python (sentence-transformers) reference fixtures for stpipe's parity tests.

Run with the reference venv (see scripts/README.md):

    /work/pyref/bin/python scripts/make_parity_fixtures.py [--shared ../shared] [--out tests/fixtures/parity]

Writes, under --out:
  sentences.txt                       first 300 sentence1 values of stsbenchmark/sts-test.csv
  minilm/embeddings.safetensors       `embeddings` [300,384] f32 from the shared all-MiniLM-L6-v2
  cmm-dense128/                       Transformer(MiniLM) -> Pooling(cls+max+mean) -> Dense(1152->128, tanh)
                                      -> Normalize, as saved by SentenceTransformer.save(), minus the
                                      root transformer weights (copy them from the shared MiniLM dir)
  cmm-dense128/embeddings.safetensors `embeddings` [300,128] f32

Deterministic: torch.manual_seed(42) right before the Dense layer is constructed; CPU only.
The script re-assembles cmm-dense128 with the shared weights in a temp dir, re-loads it with
SentenceTransformer and checks that it reproduces the embeddings (cosine > 0.999999).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.base.modules.dense import Dense  # noqa: E402
from sentence_transformers.base.modules.normalize import Normalize  # noqa: E402
from sentence_transformers.base.modules.transformer import Transformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules.pooling import Pooling  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
N_SENTENCES = 300
ROOT_WEIGHT_FILES = {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}

CMM_README = """# cmm-dense128 parity fixture

Written by `scripts/make_parity_fixtures.py` with sentence-transformers {st_version}
(torch {torch_version}, transformers {tf_version}): `SentenceTransformer.save()` of

    Transformer(all-MiniLM-L6-v2)
      -> Pooling(384, pooling_mode=("cls", "max", "mean"))   # concatenated in that order: 1152 dims
      -> Dense(1152 -> 128, bias, tanh)   (torch.manual_seed(42) right before constructing it)
      -> Normalize

Every file of the saved directory is here EXCEPT the root transformer weights
(`model.safetensors`, 90 MB) and the model card ST writes as README.md (replaced by this file).
The transformer weights are unchanged from the shared model, so a test must assemble the
model in a temp dir: copy this whole directory there, then copy
`<shared>/models/all-MiniLM-L6-v2/model.safetensors` into its root.

`embeddings.safetensors` (tensor `embeddings`, [300, 128] float32) holds
`model.encode(sentences, batch_size=32)` for the 300 lines of `../sentences.txt`
(it is not part of the saved model; ignore it when loading).

Layout notes (ST 6.x, not the legacy `sentence_transformers.models.*` one):
- modules.json types: {types}
- 1_Pooling/config.json keys: `embedding_dimension`, `pooling_mode` (list, concatenation order),
  `include_prompt` (legacy: `word_embedding_dimension` + `pooling_mode_*_tokens` booleans).
- sentence_bert_config.json has no `max_seq_length`/`do_lower_case`; the limit comes from
  tokenizer_config.json `model_max_length` ({max_len} here).
- 2_Dense/model.safetensors: `linear.weight` [128, 1152], `linear.bias` [128];
  2_Dense/config.json `activation_function` = "torch.nn.modules.activation.Tanh".
"""


sys.path.insert(0, str(Path(__file__).resolve().parent))
from sts_data import read_sts  # noqa: E402


def read_sentences(shared: Path, n: int) -> list[str]:
    path = shared / "data" / "stsbenchmark" / "sts-test.csv"
    out, _, _ = read_sts(path, n)
    for s in out:
        if "\n" in s or "\r" in s:
            raise SystemExit(f"sentence contains a newline: {s!r}")
    if len(out) != n:
        raise SystemExit(f"only {len(out)} rows in {path}")
    return out


def write_embeddings(path: Path, emb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": np.ascontiguousarray(emb, dtype=np.float32)}, str(path))


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "parity")
    ap.add_argument("--model", type=Path, default=None, help="default: <shared>/models/all-MiniLM-L6-v2")
    args = ap.parse_args()

    shared = args.shared.resolve()
    model_dir = (args.model or shared / "models" / "all-MiniLM-L6-v2").resolve()
    out = args.out.resolve()
    torch.manual_seed(0)
    np.random.seed(0)

    sentences = read_sentences(shared, N_SENTENCES)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sentences.txt").write_text("".join(s + "\n" for s in sentences), encoding="utf8")

    # 1. all-MiniLM-L6-v2 as shipped (Transformer -> mean Pooling -> Normalize).
    minilm = SentenceTransformer(str(model_dir), device="cpu")
    emb = minilm.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert emb.shape == (N_SENTENCES, 384) and emb.dtype == np.float32, (emb.shape, emb.dtype)
    write_embeddings(out / "minilm" / "embeddings.safetensors", emb)
    print(f"minilm: {emb.shape}, max_seq_length={minilm.max_seq_length}")
    del minilm

    # 2. cls+max+mean pooling -> Dense(1152->128, tanh) -> Normalize.
    transformer = Transformer(str(model_dir))
    pooling = Pooling(384, pooling_mode=("cls", "max", "mean"))
    torch.manual_seed(42)
    dense = Dense(1152, 128, activation_function=torch.nn.Tanh())
    model = SentenceTransformer(modules=[transformer, pooling, dense, Normalize()], device="cpu")
    model.eval()
    cmm_emb = model.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert cmm_emb.shape == (N_SENTENCES, 128) and cmm_emb.dtype == np.float32

    cmm_out = out / "cmm-dense128"
    if cmm_out.exists():
        shutil.rmtree(cmm_out)
    with tempfile.TemporaryDirectory(prefix="stpipe-cmm-") as tmp:
        saved = Path(tmp) / "saved"
        model.save(str(saved))
        types = [m["type"] for m in json.loads((saved / "modules.json").read_text())]
        for src in sorted(saved.rglob("*")):
            rel = src.relative_to(saved)
            if src.is_dir():
                continue
            if len(rel.parts) == 1 and (rel.name in ROOT_WEIGHT_FILES or rel.name == "README.md"):
                continue  # big transformer weights / generated model card
            dst = cmm_out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        saved_root_weights = sorted(p.name for p in saved.iterdir() if p.name in ROOT_WEIGHT_FILES)
        if saved_root_weights != ["model.safetensors"]:
            raise SystemExit(f"unexpected root weight files: {saved_root_weights}")
        # the saved transformer weights must equal the shared ones, or the assembly trick is wrong
        from safetensors.numpy import load_file

        a = load_file(str(saved / "model.safetensors"))
        b = load_file(str(model_dir / "model.safetensors"))
        strip = lambda k: k[len("bert."):] if k.startswith("bert.") else k  # noqa: E731
        a = {strip(k): v for k, v in a.items()}
        b = {strip(k): v for k, v in b.items()}
        missing = [k for k in a if k not in b or not np.array_equal(a[k], b[k])]
        if missing:
            raise SystemExit(f"saved transformer weights differ from shared ones: {missing[:5]}")
        max_len = model.max_seq_length

    (cmm_out / "README.md").write_text(
        CMM_README.format(
            st_version=__import__("sentence_transformers").__version__,
            torch_version=torch.__version__,
            tf_version=__import__("transformers").__version__,
            types=", ".join(f"`{t}`" for t in types),
            max_len=max_len,
        ),
        encoding="utf8",
    )
    write_embeddings(cmm_out / "embeddings.safetensors", cmm_emb)
    print(f"cmm-dense128: {cmm_emb.shape}, max_seq_length={max_len}, types={types}")
    del model

    # 3. Self-check: assemble fixture + shared weights, reload, re-encode.
    with tempfile.TemporaryDirectory(prefix="stpipe-cmm-check-") as tmp:
        asm = Path(tmp) / "model"
        shutil.copytree(cmm_out, asm)
        (asm / "embeddings.safetensors").unlink()
        shutil.copyfile(model_dir / "model.safetensors", asm / "model.safetensors")
        reloaded = SentenceTransformer(str(asm), device="cpu")
        re_emb = reloaded.encode(sentences, batch_size=32, convert_to_numpy=True)
    cos = min_cosine(re_emb, cmm_emb)
    diff = float(np.abs(re_emb - cmm_emb).max())
    print(f"self-check (reloaded assembled dir vs in-memory model): min cosine {cos:.9f}, max abs diff {diff:.3e}")
    if not cos > 0.999999:
        print("SELF-CHECK FAILED", file=sys.stderr)
        return 1

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"fixtures in {out}: {total} bytes")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"  {p.stat().st_size:>9}  {p.relative_to(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
