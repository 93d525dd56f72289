#!/usr/bin/env python3
"""One whole training step in torch, for stpipe's `stpipe run` parity test.

    /work/pyref/bin/python scripts/make_step_fixtures.py [--out tests/fixtures/arch]

For each tiny fixture model of tests/fixtures/arch (scripts/make_arch_fixtures.py), with every
dropout probability set to 0 in its config.json (so that the step is deterministic on both sides):
one optimizer step of MultipleNegativesRankingLoss(scale 20) over the 8 (anchor, positive) pairs
of NAME/grads.json (one batch, in order), the way sentence-transformers' Trainer takes it:
gradient clipping to norm 1.0, then torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8,
weight decay 0.01) with the Trainer's decay rule (`Trainer.get_decay_parameter_names`: no decay
for biases and norms), constant learning rate.

Writes NAME/step.safetensors: `loss` [1] (the loss of that step) and `after.<name>` for the
weights listed in grads.json (for the word embeddings only the rows in `rows.<name>` of
grads.safetensors, plus `after_untouched.<name>`, the first row no batch token uses).
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

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss  # noqa: E402
from transformers import Trainer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_arch_fixtures import ARCHS  # noqa: E402  (one list of architectures)
DROPOUT_KEYS = [
    "hidden_dropout_prob", "attention_probs_dropout_prob",  # BERT family, MPNet
    "dropout", "attention_dropout", "seq_classif_dropout", "qa_dropout",  # DistilBERT
    "embedding_dropout", "mlp_dropout", "classifier_dropout",  # ModernBERT (attention_dropout above)
]
LR, WD, CLIP = 1e-3, 0.01, 1.0


def no_dropout_copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    cfg_path = dst / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for k in DROPOUT_KEYS:
        if k in cfg:
            cfg[k] = 0.0
    cfg_path.write_text(json.dumps(cfg, indent=2))


def step(name: str, out_root: Path) -> None:
    fx = out_root / name
    spec = json.loads((fx / "grads.json").read_text())
    rows = load_file(str(fx / "grads.safetensors"))
    with tempfile.TemporaryDirectory(prefix=f"stpipe-step-{name}-") as tmp:
        model_dir = Path(tmp) / "model"
        no_dropout_copy(fx / "model", model_dir)
        model = SentenceTransformer(str(model_dir), device="cpu")
    model.train()
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if n in decay], "weight_decay": WD},
        {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    feats = [model.tokenize(spec["anchors"]), model.tokenize(spec["positives"])]
    loss = loss_fn(feats, None)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for _, p in params], CLIP)
    opt.step()
    state = {k.removeprefix("0.model.").removeprefix("0.auto_model."): v for k, v in model.state_dict().items()}
    out = {"loss": torch.tensor([loss.item()], dtype=torch.float32)}
    for w in spec["weights"]:
        t = state[w].detach().float()
        r = rows.get(f"rows.{w}")
        if r is not None:
            untouched = next(i for i in range(t.shape[0]) if i not in set(r.tolist()))
            out[f"after_untouched.{w}"] = t[untouched].clone()
            out[f"untouched_row.{w}"] = torch.tensor([untouched], dtype=torch.int64)
            t = t[r]
        out[f"after.{w}"] = t.contiguous().clone()
    save_file(out, str(fx / "step.safetensors"))
    print(f"{name}: loss {loss.item():.7f}, {len(decay)} of {len(params)} parameters decay")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests/fixtures/arch")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for name in ARCHS:
        step(name, args.out)


if __name__ == "__main__":
    main()
