"""Reference figures of sentence-transformers' evaluators for stpipe's unit tests.

The evaluators run on fixed float32 embeddings (the `gen` of
src/runtime/eval/mod.rs `testdata`) instead of a model: `embed_inputs` is
overridden to look texts up. Prints JSON; the tests in
src/runtime/eval/{triplet,information_retrieval,translation,reranking,
paraphrase_mining}.rs hard-code the figures.

    /work/pyref/bin/python scripts/evaluator_reference_values.py
"""

import json
import math

import numpy as np
import torch
from sentence_transformers.sentence_transformer.evaluation import (
    InformationRetrievalEvaluator,
    ParaphraseMiningEvaluator,
    RerankingEvaluator,
    TranslationEvaluator,
    TripletEvaluator,
)


def gen(c, n, d, m, step):
    rows = []
    for i in range(n):
        s = np.float32(1.0) + np.float32(i % m) * np.float32(step)
        rows.append([np.float32(math.sin(0.37 * (c * 97 + i * 13 + j) + 0.5)) * s for j in range(d)])
    return np.array(rows, dtype=np.float32)


class Model:
    """What the evaluators ask of a model besides encoding."""

    similarity_fn_name = "cosine"

    def similarity(self, a, b):
        a = torch.nn.functional.normalize(a, dim=-1)
        b = torch.nn.functional.normalize(b, dim=-1)
        return a @ b.T


def lookup(table, texts, tensor):
    rows = np.stack([table[t] for t in texts])
    return torch.from_numpy(rows) if tensor else rows


def fixed(base, tensor):
    """`base` with `embed_inputs` looking texts up in a table of fixed embeddings."""

    class Fixed(base):
        def __init__(self, table, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.table = table

        def embed_inputs(self, model, sentences, **kwargs):
            return lookup(self.table, sentences, tensor=tensor)

        def store_metrics_in_model_card_data(self, *args, **kwargs):
            pass

    return Fixed


FixedTriplet = fixed(TripletEvaluator, tensor=False)
FixedIR = fixed(InformationRetrievalEvaluator, tensor=True)
FixedTranslation = fixed(TranslationEvaluator, tensor=True)
FixedReranking = fixed(RerankingEvaluator, tensor=True)


def main():
    out = {}
    fns = ["cosine", "dot", "euclidean", "manhattan"]

    a, p, n = gen(0, 12, 6, 4, 0.5), gen(1, 12, 6, 3, 0.7), gen(2, 12, 6, 5, 0.3)
    table = {}
    for prefix, e in (("a", a), ("p", p), ("n", n)):
        for i, row in enumerate(e):
            table[f"{prefix}{i}"] = row
    names = lambda prefix: [f"{prefix}{i}" for i in range(12)]
    for margin in (0.0, 0.5):
        ev = FixedTriplet(table, names("a"), names("p"), names("n"), similarity_fn_names=fns, margin=margin)
        out[f"triplet_margin_{margin}"] = ev(Model())

    q, d = gen(4, 10, 6, 3, 0.4), gen(5, 40, 6, 4, 0.3)
    table = {f"query {i}": row for i, row in enumerate(q)}
    table.update({f"doc {j}": row for j, row in enumerate(d)})
    queries = {f"q{i}": f"query {i}" for i in range(10)}
    corpus = {f"d{j:02}": f"doc {j}" for j in range(40)}
    relevant = {f"q{i}": {f"d{(3 * i) % 40:02}", f"d{(7 * i + 1) % 40:02}", f"d{(i * i) % 40:02}"} for i in range(9)}
    ev = FixedIR(
        table,
        queries,
        corpus,
        relevant,
        corpus_chunk_size=7,
        accuracy_at_k=[1, 3, 5, 10],
        precision_recall_at_k=[1, 3, 5, 10, 100],
        ndcg_at_k=[1, 3, 5, 10, 100],
        mrr_at_k=[10],
        map_at_k=[100],
    )
    out["information_retrieval"] = ev(Model())

    # Translation: 16 pairs, each target its source plus noise, the target
    # texts repeating every 7 rows (their embeddings differ), so duplicates
    # count as found.
    src = gen(6, 16, 5, 4, 0.5)
    trg = src + np.float32(0.15) * gen(7, 16, 5, 3, 0.2)
    s_texts = [f"s{i}" for i in range(16)]
    t_texts = [f"t{i % 7}" for i in range(16)]
    # Texts are keys: give each row its own key, then map back to the text.
    table = {f"src {i}": row for i, row in enumerate(src)}
    table.update({f"trg {i}": row for i, row in enumerate(trg)})

    class Texts(FixedTranslation):
        def embed_inputs(self, model, sentences, **kwargs):
            side = "src" if sentences is self.source_sentences else "trg"
            return list(lookup(self.table, [f"{side} {i}" for i in range(len(sentences))], tensor=True))

    ev = Texts(table, s_texts, t_texts, write_csv=False)
    out["translation"] = ev(Model())

    # Reranking: 6 queries, 12 candidates each, candidate j of query i
    # relevant when (i + j) % 4 == 0.
    q, d = gen(8, 6, 5, 3, 0.3), gen(9, 72, 5, 4, 0.2)
    table = {f"q{i}": row for i, row in enumerate(q)}
    table.update({f"d{j}": row for j, row in enumerate(d)})
    samples = [
        {
            "query": f"q{i}",
            "positive": [f"d{i * 12 + j}" for j in range(12) if (i + j) % 4 == 0],
            "negative": [f"d{i * 12 + j}" for j in range(12) if (i + j) % 4 != 0],
        }
        for i in range(6)
    ]
    out["reranking"] = FixedReranking(table, samples, write_csv=False)(Model())
    # Paraphrase mining: 30 sentences, paraphrases (i, i + 1) for i a
    # multiple of 3 (sentence i + 1 is sentence i plus noise) and (0, 7),
    # (7, 20); 5 neighbours each, at most 40 pairs.
    emb = gen(10, 30, 5, 4, 0.3)
    noise = gen(11, 30, 5, 3, 0.2)
    for i in range(0, 29, 3):
        emb[i + 1] = emb[i] + np.float32(0.2) * noise[i]

    class Encoder(Model):
        def encode(self, sentences, **kwargs):
            return torch.from_numpy(np.stack([emb[int(t[1:])] for t in sentences]))

    sentences = {f"s{i}": f"t{i}" for i in range(30)}
    dups = [(f"s{i}", f"s{i + 1}") for i in range(0, 29, 3)] + [("s0", "s7"), ("s7", "s20")]
    for closure in (False, True):
        ev = ParaphraseMiningEvaluator(
            sentences, dups, add_transitive_closure=closure, top_k=5, max_pairs=40, write_csv=False
        )
        ev.store_metrics_in_model_card_data = lambda *a, **k: None
        out[f"paraphrase_mining_closure_{closure}"] = ev(Encoder())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
