"""Reference values of AdaptiveLayerLoss and Matryoshka2dLoss on the tiny
random models of tests/fixtures/arch/ (bert, distilbert, mpnet,
modernbert), for tests/adaptive_layer.rs: sentence-transformers' losses
around MultipleNegativesRankingLoss(scale 20) on the (anchor, positive)
pairs of each model's grads.json, in eval mode (dropout off), every
earlier layer used (`n_layers_per_step=-1`, so nothing is drawn at
random). Writes tests/fixtures/arch/adaptive_layer.json.

    /work/pyref/bin/python scripts/make_adaptive_layer_fixture.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer, losses  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "arch"
ARCHS = ["bert", "distilbert", "mpnet", "modernbert"]


def cases(model):
    mnrl = losses.MultipleNegativesRankingLoss(model, scale=20.0)
    dim = model.get_embedding_dimension()
    return {
        "adaptive_defaults": losses.AdaptiveLayerLoss(model, mnrl, n_layers_per_step=-1),
        "adaptive_log": losses.AdaptiveLayerLoss(
            model,
            mnrl,
            n_layers_per_step=-1,
            last_layer_weight=0.9,
            prior_layers_weight=0.7,
            kl_div_weight=1.3,
            kl_temperature=0.5,
            layer_weighting="log",
        ),
        "adaptive_no_kl_linear": losses.AdaptiveLayerLoss(
            model, mnrl, n_layers_per_step=-1, kl_temperature=0.0, layer_weighting="linear"
        ),
        "matryoshka_2d": losses.Matryoshka2dLoss(
            model, mnrl, [dim, dim // 2], n_layers_per_step=-1, n_dims_per_step=-1
        ),
    }


def main():
    out = {}
    for name in ARCHS:
        model = SentenceTransformer(str(ROOT / name / "model"), device="cpu")
        model.eval()
        pairs = json.loads((ROOT / name / "grads.json").read_text())
        feats = lambda: [model.tokenize(pairs["anchors"]), model.tokenize(pairs["positives"])]  # noqa: E731
        values = {}
        with torch.enable_grad():
            for key, loss in cases(model).items():
                values[key] = float(loss(feats(), None))
        out[name] = values
        print(name, values)
    (ROOT / "adaptive_layer.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
