//! The data shapes that losses and evaluators share, following
//! sentence-transformers' conventions: text columns in order, then a label
//! column named `label` or `score`.

use super::{ColType, Columns, ListLabel};

const fn texts(names: &'static [&'static str], min: usize, max: Option<usize>) -> Columns {
    Columns {
        texts: names,
        min_texts: min,
        max_texts: max,
        label: None,
        label_range: None,
        label_classes: None,
        list_label: ListLabel::No,
        label_from: None,
    }
}

/// Two texts and a float score.
pub const PAIR_SCORE: Columns = Columns {
    label: Some(ColType::Float),
    ..texts(&["sentence1", "sentence2"], 2, Some(2))
};

/// Two texts and a float score in [0, 1].
pub const PAIR_UNIT_SCORE: Columns = Columns {
    label_range: Some((0.0, 1.0)),
    ..PAIR_SCORE
};

/// Two texts and an integer class label.
pub const PAIR_LABEL: Columns = Columns {
    label: Some(ColType::Int),
    ..texts(&["sentence1", "sentence2"], 2, Some(2))
};

/// Two texts and a 0/1 label (1 = similar).
pub const PAIR_BINARY: Columns = Columns {
    label_range: Some((0.0, 1.0)),
    ..PAIR_LABEL
};

/// (anchor, positive, negative) triplets.
pub const TRIPLET: Columns = texts(&["anchor", "positive", "negative"], 3, Some(3));

/// (anchor, positive) pairs or (anchor, positive, negative) triplets.
pub const PAIR_OR_TRIPLET: Columns = texts(&["anchor", "positive", "negative"], 2, Some(3));

/// Single sentences, or pairs of texts (unsupervised losses that make
/// their pairs from sentences when given only those).
pub const SINGLE_OR_PAIR: Columns = texts(&["text", "text2"], 1, Some(2));

/// Single sentences.
pub const SINGLE: Columns = texts(&["text"], 1, Some(1));

/// (anchor, positive) pairs.
pub const PAIR: Columns = texts(&["anchor", "positive"], 2, Some(2));

/// (anchor, positive, negatives...): in-batch negatives ranking.
pub const RANKING: Columns = texts(&["anchor", "positive", "negative..."], 2, None);

/// One text and an integer class label (batch triplet losses).
pub const SINGLE_LABELLED: Columns = Columns {
    label: Some(ColType::Int),
    ..texts(&["text"], 1, Some(1))
};

/// A source text and its translations or paraphrases (distillation).
pub const SOURCE_AND_TARGETS: Columns = texts(&["source", "translation..."], 1, None);

/// A source text and at least one translation (distillation evaluation).
pub const SOURCE_AND_TRANSLATIONS: Columns = texts(&["source", "translation..."], 2, None);

/// A text and its translation (bitext retrieval).
pub const BITEXT: Columns = texts(&["source", "target"], 2, Some(2));

/// A query, a candidate document and whether it is relevant (0/1), one row
/// per candidate (reranking).
pub const QUERY_CANDIDATE: Columns = Columns {
    texts: &["query", "document"],
    ..PAIR_BINARY
};

/// One or more text columns and no label (regularisers of any data).
pub const ANY_TEXTS: Columns = texts(&["text..."], 1, None);

/// (query, positive, negative) and a float score: the teacher's margin
/// `score(query, positive) - score(query, negative)` (MarginMSE).
pub const TRIPLET_MARGIN: Columns = Columns {
    label: Some(ColType::Float),
    list_label: ListLabel::PerNegativeOrCandidate,
    label_from: Some("teacher"),
    ..texts(&["query", "positive", "negative_1", "..."], 3, None)
};

/// (query, positive, negative_1, ..., negative_n) and a list of teacher
/// scores, one per candidate (DistillKLDiv).
pub const CANDIDATE_SCORES: Columns = Columns {
    label: Some(ColType::FloatList),
    list_label: ListLabel::PerCandidate,
    label_from: Some("teacher"),
    ..texts(&["query", "positive", "negative_1", "..."], 3, None)
};
