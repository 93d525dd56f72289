//! Losses, used by objectives.

use super::{opt, req, ArgType::*, ColType, Columns, Component, Family};

pub const SIMILARITIES: &[&str] = &["cosine", "dot", "euclidean", "manhattan"];
pub const DISTANCES: &[&str] = &["cosine", "euclidean", "manhattan"];

const PAIR_SCORE: Columns = Columns {
    texts: &["sentence1", "sentence2"],
    min_texts: 2,
    max_texts: Some(2),
    label: Some(ColType::Float),
    label_range: None,
};
const PAIR_LABEL: Columns = Columns {
    texts: &["sentence1", "sentence2"],
    min_texts: 2,
    max_texts: Some(2),
    label: Some(ColType::Int),
    label_range: None,
};
const UNIT_SCORE: Columns = Columns {
    label_range: Some((0.0, 1.0)),
    ..PAIR_SCORE
};
const BINARY_LABEL: Columns = Columns {
    label_range: Some((0.0, 1.0)),
    ..PAIR_LABEL
};
const TRIPLET: Columns = Columns {
    texts: &["anchor", "positive", "negative"],
    min_texts: 3,
    max_texts: Some(3),
    label: None,
    label_range: None,
};
const RANKING: Columns = Columns {
    texts: &["anchor", "positive", "negative..."],
    min_texts: 2,
    max_texts: None,
    label: None,
    label_range: None,
};

pub const ALL: &[Component] = &[
    Component {
        name: "CosineSimilarityLoss",
        family: Family::Loss,
        doc: "Regresses the cosine similarity of two texts on a score in [0, 1] (mean squared error).",
        args: &[req("model", Model, "the model trained")],
        columns: Some(UNIT_SCORE),
        metrics: &[],
    },
    Component {
        name: "CoSENTLoss",
        family: Family::Loss,
        doc: "Ranks pairs so that pairs with higher scores have higher cosine similarity (CoSENT).",
        args: &[
            req("model", Model, "the model trained"),
            opt("scale", Float, "20.0", "inverse temperature"),
        ],
        columns: Some(PAIR_SCORE),
        metrics: &[],
    },
    Component {
        name: "AnglELoss",
        family: Family::Loss,
        doc: "CoSENT on angle differences in complex space (AnglE).",
        args: &[
            req("model", Model, "the model trained"),
            opt("scale", Float, "20.0", "inverse temperature"),
        ],
        columns: Some(PAIR_SCORE),
        metrics: &[],
    },
    Component {
        name: "SoftmaxLoss",
        family: Family::Loss,
        doc: "A classifier on (u, v, |u-v|) of two sentence embeddings, trained with cross-entropy (the SBERT NLI objective).",
        args: &[
            req("model", Model, "the model trained"),
            req("num_labels", Count, "number of classes; labels are 0..num_labels-1"),
            opt("concat_difference", Bool, "true", "feed |u-v| to the classifier"),
            opt("concat_multiplication", Bool, "false", "feed u*v to the classifier"),
        ],
        columns: Some(PAIR_LABEL),
        metrics: &[],
    },
    Component {
        name: "MultipleNegativesRankingLoss",
        family: Family::Loss,
        doc: "In-batch negatives ranking loss (InfoNCE): each anchor must pick its positive among all positives (and hard negatives) of the batch.",
        args: &[
            req("model", Model, "the model trained"),
            opt("scale", Float, "20.0", "inverse temperature"),
            opt("similarity", Choice(SIMILARITIES), "cosine", "similarity function"),
        ],
        columns: Some(RANKING),
        metrics: &[],
    },
    Component {
        name: "MultipleNegativesSymmetricRankingLoss",
        family: Family::Loss,
        doc: "MultipleNegativesRankingLoss in both directions (anchor to positive and positive to anchor).",
        args: &[
            req("model", Model, "the model trained"),
            opt("scale", Float, "20.0", "inverse temperature"),
            opt("similarity", Choice(SIMILARITIES), "cosine", "similarity function"),
        ],
        columns: Some(Columns {
            texts: &["anchor", "positive"],
            min_texts: 2,
            max_texts: Some(2),
            label: None,
            label_range: None,
        }),
        metrics: &[],
    },
    Component {
        name: "MSELoss",
        family: Family::Loss,
        doc: "Distillation: the student's embedding of every text column regresses on the teacher's embedding of the first column.",
        args: &[
            req("model", Model, "the student model trained"),
            req("teacher", Model, "the frozen teacher model; same embedding width as the student"),
        ],
        columns: Some(Columns {
            texts: &["source", "translation..."],
            min_texts: 1,
            max_texts: None,
            label: None,
            label_range: None,
        }),
        metrics: &[],
    },
    Component {
        name: "ContrastiveLoss",
        family: Family::Loss,
        doc: "Contrastive loss on pairs labelled 1 (similar) or 0 (dissimilar).",
        args: &[
            req("model", Model, "the model trained"),
            opt("distance", Choice(DISTANCES), "cosine", "distance metric"),
            opt("margin", Float, "0.5", "margin for dissimilar pairs"),
        ],
        columns: Some(BINARY_LABEL),
        metrics: &[],
    },
    Component {
        name: "OnlineContrastiveLoss",
        family: Family::Loss,
        doc: "Contrastive loss on the hard positives and hard negatives of each batch only.",
        args: &[
            req("model", Model, "the model trained"),
            opt("distance", Choice(DISTANCES), "cosine", "distance metric"),
            opt("margin", Float, "0.5", "margin for dissimilar pairs"),
        ],
        columns: Some(BINARY_LABEL),
        metrics: &[],
    },
    Component {
        name: "TripletLoss",
        family: Family::Loss,
        doc: "Pushes the anchor closer to the positive than to the negative by a margin.",
        args: &[
            req("model", Model, "the model trained"),
            opt("distance", Choice(DISTANCES), "euclidean", "distance metric"),
            opt("margin", Float, "5.0", "triplet margin"),
        ],
        columns: Some(TRIPLET),
        metrics: &[],
    },
    Component {
        name: "BatchHardTripletLoss",
        family: Family::Loss,
        doc: "Triplet loss on the hardest positive and negative in each batch, for single texts with class labels.",
        args: &[
            req("model", Model, "the model trained"),
            opt("margin", Float, "5.0", "triplet margin"),
        ],
        columns: Some(Columns {
            texts: &["text"],
            min_texts: 1,
            max_texts: Some(1),
            label: Some(ColType::Int),
            label_range: None,
        }),
        metrics: &[],
    },
];
