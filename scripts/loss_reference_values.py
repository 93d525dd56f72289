"""Reference values of sentence-transformers' losses for stpipe's unit tests.

Each loss is evaluated in float64 on the deterministic inputs of
src/runtime/loss/testutil.rs (`gen`, `gen_scores`), through the loss's own
`compute_loss_from_embeddings`, and printed as JSON: `{case: value}`. The
tests in src/runtime/loss/*.rs hard-code these numbers (to 1e-10).

    /work/pyref/bin/python scripts/loss_reference_values.py
"""

import json
import math

import torch
from sentence_transformers import losses, util
from sentence_transformers.base.losses.merged_forward import column_merging_disabled
from sentence_transformers.sentence_transformer.losses.batch_hard_triplet import (
    BatchHardTripletLossDistanceFunction as BatchDist,
)
from sentence_transformers.sentence_transformer.losses.contrastive import SiameseDistanceMetric
from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric


def gen(c, n, d):
    return torch.tensor(
        [[math.sin(0.37 * (c * 97 + i * 13 + j) + 0.5) for j in range(d)] for i in range(n)],
        dtype=torch.float64,
    )


class NoModel(torch.nn.Module):
    """Stands in for the SentenceTransformer the losses keep a reference to."""

    similarity_fn_name = "cosine"


def value(loss, cols, labels=None):
    return float(loss.compute_loss_from_embeddings(cols, labels))


class SequentialModel(torch.nn.Sequential):
    """Stands in for the model of the Cached... losses, which look at its
    first module."""

    similarity_fn_name = "cosine"

    def __init__(self):
        super().__init__(torch.nn.Identity())


class FixedModel(torch.nn.Module):
    """A model whose forward returns the embeddings its features carry: the
    wrapper losses (MatryoshkaLoss) call the model, not only the embeddings."""

    similarity_fn_name = "cosine"

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def get_embedding_dimension(self):
        return self.dim

    def forward(self, features):
        return {"sentence_embedding": features["embedding"]}


def matryoshka_value(inner, inner_kwargs, cols, dims, weights=None, labels=None):
    model = FixedModel(cols[0].shape[1])
    loss = losses.MatryoshkaLoss(model, inner(model, **inner_kwargs), dims, weights)
    with column_merging_disabled():
        return float(loss([{"embedding": c} for c in cols], labels))


class GuideModel(torch.nn.Module):
    """The guide of GISTEmbedLoss: returns the guide embeddings the
    features carry."""

    def forward(self, features):
        return {"sentence_embedding": features["guide"]}


def gist_value(cols, guide_cols, temperature, margin_strategy, margin, contrast_anchors, contrast_positives):
    """GISTEmbedLoss's forward on fixed student and guide embeddings. Its
    constructor insists on Hugging Face tokenizers, so the loss is built
    without it, with the attributes the constructor sets."""
    loss = losses.GISTEmbedLoss.__new__(losses.GISTEmbedLoss)
    torch.nn.Module.__init__(loss)
    loss.model = FixedModel(cols[0].shape[1])
    loss.guide = GuideModel()
    loss.temperature = temperature
    loss.similarity_fct = torch.nn.CosineSimilarity(dim=-1)
    loss.must_retokenize = False
    loss.margin_strategy = margin_strategy
    loss.margin = margin
    loss.contrast_anchors = contrast_anchors
    loss.contrast_positives = contrast_positives
    loss.gather_across_devices = False
    loss.cross_entropy_loss = torch.nn.CrossEntropyLoss()
    features = [{"embedding": c, "guide": g} for c, g in zip(cols, guide_cols)]
    with column_merging_disabled():
        return float(loss(features, None))


class KeyModel(torch.nn.Module):
    """A model whose forward returns the embeddings its features carry under
    `key`: ContrastiveTension's two copies read different columns."""

    similarity_fn_name = "cosine"

    def __init__(self, key):
        super().__init__()
        self.key = key

    def forward(self, features):
        return {"sentence_embedding": features[self.key]}


def contrastive_tension_value(a, b, labels):
    """ContrastiveTensionLoss's forward: its copy (model1) embeds the first
    texts (`a`), the model (model2) the second (`b`)."""
    loss = losses.ContrastiveTensionLoss(KeyModel("b"))
    loss.model1 = KeyModel("a")
    return float(loss([{"a": a}, {"b": b}], labels))


def contrastive_tension_in_batch_value(a, b, scale, similarity_fct):
    """ContrastiveTensionLossInBatchNegatives' forward: the copy and the
    model embed the same sentences (`a` and `b` stand for their outputs)."""
    loss = losses.ContrastiveTensionLossInBatchNegatives(KeyModel("b"), scale=scale, similarity_fct=similarity_fct)
    loss.model1 = KeyModel("a")
    with torch.no_grad():
        loss.logit_scale.data = loss.logit_scale.data.double()
    return float(loss([{"a": a, "b": b}], None))


def main():
    m = NoModel()
    u, v, w = gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)
    binary = torch.tensor([1, 0, 1, 1, 0])
    out = {}

    # MultipleNegativesRankingLoss with distance similarities.
    out["mnrl_euclidean_uv"] = value(
        losses.MultipleNegativesRankingLoss(m, scale=20.0, similarity_fct=util.euclidean_sim), [u, v]
    )
    out["mnrl_manhattan_uvw_scale1"] = value(
        losses.MultipleNegativesRankingLoss(m, scale=1.0, similarity_fct=util.manhattan_sim), [u, v, w]
    )

    # ContrastiveLoss and OnlineContrastiveLoss on (u, v) pairs.
    out["contrastive_default"] = value(losses.ContrastiveLoss(m), [u, v], binary)
    out["contrastive_euclidean_m2_sum"] = value(
        losses.ContrastiveLoss(m, SiameseDistanceMetric.EUCLIDEAN, margin=2.0, size_average=False), [u, v], binary
    )
    out["contrastive_manhattan_m3"] = value(
        losses.ContrastiveLoss(m, SiameseDistanceMetric.MANHATTAN, margin=3.0), [u, v], binary
    )
    out["online_contrastive_default"] = value(losses.OnlineContrastiveLoss(m), [u, v], binary)
    out["online_contrastive_euclidean_m2"] = value(
        losses.OnlineContrastiveLoss(m, SiameseDistanceMetric.EUCLIDEAN, margin=2.0), [u, v], binary
    )
    out["online_contrastive_all_positive"] = value(
        losses.OnlineContrastiveLoss(m), [u, v], torch.tensor([1, 1, 1, 1, 1])
    )

    # TripletLoss on (u, v, w).
    out["triplet_default"] = value(losses.TripletLoss(m), [u, v, w])
    out["triplet_cosine_m05"] = value(losses.TripletLoss(m, TripletDistanceMetric.COSINE, 0.5), [u, v, w])
    out["triplet_manhattan_m1"] = value(losses.TripletLoss(m, TripletDistanceMetric.MANHATTAN, 1.0), [u, v, w])

    # Batch triplet losses on single texts with class labels.
    e = gen(3, 8, 4)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 3])
    for name, cls, kwargs in [
        ("batch_hard", losses.BatchHardTripletLoss, {"margin": 1.0}),
        ("batch_all", losses.BatchAllTripletLoss, {"margin": 1.0}),
        ("batch_semi_hard", losses.BatchSemiHardTripletLoss, {"margin": 1.0}),
        ("batch_hard_soft_margin", losses.BatchHardSoftMarginTripletLoss, {}),
    ]:
        out[f"{name}_euclidean"] = value(cls(m, **kwargs), [e], labels)
        out[f"{name}_cosine"] = value(cls(m, distance_metric=BatchDist.cosine_distance, **kwargs), [e], labels)
        if "margin" in kwargs:
            out[f"{name}_default_margin"] = value(cls(m), [e], labels)

    # MatryoshkaLoss around MNRL and CoSENT, on 6-dimensional embeddings.
    u6, v6, w6 = gen(0, 5, 6), gen(1, 5, 6), gen(2, 5, 6)
    scores = torch.tensor([((i * 7) % 5) / 4.0 for i in range(5)], dtype=torch.float64)
    mnrl = losses.MultipleNegativesRankingLoss
    out["matryoshka_mnrl_uvw_642"] = matryoshka_value(mnrl, {}, [u6, v6, w6], [6, 4, 2])
    out["matryoshka_mnrl_uv_263_weighted"] = matryoshka_value(mnrl, {}, [u6, v6], [2, 6, 3], [0.25, 1.0, 0.5])
    out["matryoshka_cosent_uv_631"] = matryoshka_value(losses.CoSENTLoss, {}, [u6, v6], [6, 3, 1], labels=scores)

    # GlobalOrthogonalRegularizationLoss: the trainer adds its parts.
    def gor(sim, mean_w, second_w, agg, cols):
        parts = losses.GlobalOrthogonalRegularizationLoss(
            m, similarity_fct=sim, mean_weight=mean_w, second_moment_weight=second_w, aggregation=agg
        ).compute_loss_from_embeddings(cols)
        return float(sum(parts.values()))

    out["gor_cosine_uv"] = gor(util.cos_sim, 1.0, 1.0, "mean", [u, v])
    out["gor_dot_uvw_sum"] = gor(util.dot_score, 0.5, 2.0, "sum", [u, v, w])
    out["gor_second_moment_only_u"] = gor(util.cos_sim, 0.0, 1.0, "sum", [u])

    # MarginMSELoss: the score column holds the teacher's margins.
    margins = torch.tensor([((i * 7) % 5) / 4.0 for i in range(5)], dtype=torch.float64)
    out["margin_mse_dot"] = value(losses.MarginMSELoss(m), [u, v, w], margins)
    out["margin_mse_cosine"] = value(losses.MarginMSELoss(m, similarity_fct=util.pairwise_cos_sim), [u, v, w], margins)

    # With two negatives the label is a list per row: two margins, or the
    # teacher's three scores (positive first). DistillKLDivLoss reads the
    # latter. `teacher(n, k)` is src/runtime/loss/distill_kl_div.rs's.
    def teacher(n, k):
        return torch.tensor(
            [[((i * 7 + j * 3) % 5) * 2.5 for j in range(k)] for i in range(n)], dtype=torch.float64
        )

    x = gen(3, 5, 4)
    out["margin_mse_two_margins"] = value(losses.MarginMSELoss(m), [u, v, w, x], teacher(5, 2))
    out["margin_mse_three_scores"] = value(
        losses.MarginMSELoss(m, similarity_fct=util.pairwise_cos_sim), [u, v, w, x], teacher(5, 3)
    )
    # GISTEmbedLoss: guide embeddings of another width (3), temperature 0.05.
    guide = [gen(3, 5, 3), gen(4, 5, 3), gen(5, 5, 3)]
    out["gist_pairs_absolute"] = gist_value([u, v], guide[:2], 0.05, "absolute", 0.0, True, True)
    out["gist_triplets_absolute_margin"] = gist_value([u, v, w], guide, 0.05, "absolute", 0.1, True, False)
    out["gist_triplets_relative"] = gist_value([u, v, w], guide, 0.05, "relative", 0.05, False, True)
    # MegaBatchMarginLoss over (anchor, positive) pairs.
    mega = losses.MegaBatchMarginLoss(m, use_mini_batched_version=False)
    out["mega_batch_margin_uv"] = float(mega.calculate_loss([[u], [v]]))
    mega = losses.MegaBatchMarginLoss(m, positive_margin=0.5, negative_margin=-0.2, use_mini_batched_version=False)
    out["mega_batch_margin_vw_05_m02"] = float(mega.calculate_loss([[v], [w]]))
    out["distill_kl_dot"] = value(losses.DistillKLDivLoss(m), [u, v, w, x], teacher(5, 3))
    out["distill_kl_cosine_t2"] = value(
        losses.DistillKLDivLoss(m, similarity_fct=util.pairwise_cos_sim, temperature=2.0), [u, v, w, x], teacher(5, 3)
    )
    out["distill_kl_dot_student_half_teacher_3"] = value(
        losses.DistillKLDivLoss(m, student_temperature=0.5, teacher_temperature=3.0), [u, v, w, x], teacher(5, 3)
    )

    # The cached in-batch negatives losses, mini-batches smaller than the batch.
    # Their loss math (`calculate_loss`) over the embeddings in mini-batches.
    seq = SequentialModel()
    for key, cls, mbs in [
        ("cached_mnrl_uvw", losses.CachedMultipleNegativesRankingLoss, 2),
        ("cached_mnsrl_uvw", losses.CachedMultipleNegativesSymmetricRankingLoss, 3),
    ]:
        reps = [list(col.split(mbs)) for col in (u, v, w)]
        out[key] = float(cls(seq, mini_batch_size=mbs).calculate_loss(reps))
    # ContrastiveTension: labels 1 for identical pairs.
    out["contrastive_tension"] = contrastive_tension_value(u, v, torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0]))
    out["contrastive_tension_in_batch_cos_20"] = contrastive_tension_in_batch_value(u, v, 20.0, util.cos_sim)
    out["contrastive_tension_in_batch_dot_1"] = contrastive_tension_in_batch_value(u, v, 1.0, util.dot_score)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
