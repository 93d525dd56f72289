"""Parity fixtures of DenoisingAutoEncoderLoss (TSDAE) for stpipe's tests.

For each of the tiny BERT and RoBERTa models of tests/fixtures/arch, write a
model directory whose weights file is that of a causal-LM decoder
(`BertLMHeadModel` / `RobertaForCausalLM` with `is_decoder` and
`add_cross_attention`): the tiny model's own weights under the base prefix,
plus cross-attentions and a language-model head drawn with
`torch.manual_seed(1)`, as a checkpoint saved with its head holds them.
The config stays the encoder's. sentence-transformers then loads the
encoder from it, and its DenoisingAutoEncoderLoss loads the decoder's own
weights from the same file, so both sides start from the same decoder.

The loss of fixed (damaged, original) pairs in eval mode (no dropout) and
the gradient of every parameter go to `loss.json` and `grads.safetensors`.

    /work/pyref/bin/python scripts/make_tsdae_fixture.py
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss
from transformers import AutoConfig, AutoModelForCausalLM

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests/fixtures/tsdae"

# (damaged, original): words deleted from the originals by hand.
PAIRS = [
    ("girl styling hair.", "A girl is styling her hair."),
    ("group men soccer beach", "A group of men play soccer on the beach."),
    ("woman measuring ankle.", "One woman is measuring another woman's ankle."),
    ("man cutting", "A man is cutting up a cucumber."),
    ("A harp.", "A man is playing a harp."),
]


def make(arch):
    src = REPO / f"tests/fixtures/arch/{arch}/model"
    dst = OUT / arch / "model"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    config = AutoConfig.from_pretrained(src)
    config.is_decoder = True
    config.add_cross_attention = True
    torch.manual_seed(1)
    lm = AutoModelForCausalLM.from_config(config)
    base = load_file(src / "model.safetensors")
    prefix = lm.base_model_prefix
    missing, unexpected = getattr(lm, prefix).load_state_dict(base, strict=False)
    assert all(u.startswith("pooler.") for u in unexpected), unexpected
    assert all("crossattention" in m for m in missing), missing
    state = {k: v.detach().clone().contiguous() for k, v in lm.state_dict().items()}
    # The encoder's pooler (no part of a decoder) stays in the file.
    state.update({f"{prefix}.{k}": base[k] for k in unexpected})
    # The head's matrix is the token embeddings (tied); leave it out as
    # transformers' own save does.
    state = {k: v for k, v in state.items() if not k.endswith("decoder.weight")}
    save_file(state, dst / "model.safetensors", metadata={"format": "pt"})

    model = SentenceTransformer(str(dst), device="cpu")
    loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
    model.eval()
    loss.eval()
    damaged = [d for d, _ in PAIRS]
    original = [o for _, o in PAIRS]
    features = [model.tokenize(damaged), model.tokenize(original)]
    value = loss(features, None)
    value.backward()
    grads = {}
    seen = set()
    for name, p in loss.named_parameters():
        if p.grad is None or id(p) in seen:
            continue
        seen.add(id(p))
        if name.startswith("decoder."):
            rel = name[len("decoder.") :]
            rel = rel[len(prefix) + 1 :] if rel.startswith(prefix + ".") else rel
            key = rel if ("crossattention" in rel or not rel.startswith("encoder.layer")) else rel
            if "crossattention" in rel or rel.startswith(("cls.", "lm_head.")):
                grads["decoder." + key] = p.grad.detach().clone().contiguous()
                continue
        # A parameter shared by encoder and decoder: its encoder name.
        enc = [n for n, q in model[0].auto_model.named_parameters() if q is p]
        assert enc, name
        grads[enc[0]] = p.grad.detach().clone().contiguous()
    save_file(grads, dst.parent / "grads.safetensors")
    ids = features[1]["input_ids"].tolist()
    (dst.parent / "loss.json").write_text(
        json.dumps({"pairs": PAIRS, "loss": float(value), "original_ids": ids}, indent=1) + "\n"
    )
    print(arch, float(value), len(grads), "gradients")


if __name__ == "__main__":
    for arch in ["bert", "roberta"]:
        make(arch)
