//! The data columns a loss or evaluator needs ([`Columns`]: text columns
//! in order, then a label column named `label` or `score`, following
//! sentence-transformers' conventions), and the shapes that losses and
//! evaluators share.

/// The type of a data column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColType {
    Text,
    /// A float score (integers are accepted and converted).
    Float,
    /// An integer class label.
    Int,
    /// A list of float scores per row, of one length for the whole source
    /// (`score: take(col("scores"), 4)`): teacher scores for distillation.
    FloatList,
}

impl ColType {
    pub fn noun(self) -> &'static str {
        match self {
            ColType::Text => "text",
            ColType::Float => "float score",
            ColType::Int => "integer label",
            ColType::FloatList => "list of float scores",
        }
    }
}

/// The columns a loss or evaluator needs, following sentence-transformers:
/// the text columns in order, then a label column named `label` or `score`.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// Names of the text columns, for documentation (`anchor`, `positive`).
    pub texts: &'static [&'static str],
    pub min_texts: usize,
    /// `None`: any number of text columns above the minimum.
    pub max_texts: Option<usize>,
    /// The label column's type, if one is needed.
    pub label: Option<ColType>,
    /// The range label values must lie in (checked on every row).
    pub label_range: Option<(f64, f64)>,
    /// The argument that gives the number of classes: labels must lie in
    /// `0..n` (SoftmaxLoss's `num_labels`).
    pub label_classes: Option<&'static str>,
    /// How long a list label ([`ColType::FloatList`]) must be, when one is
    /// accepted.
    pub list_label: ListLabel,
    /// The argument (a teacher model) that, when given, computes the
    /// label: the data then has no label column.
    pub label_from: Option<&'static str>,
}

/// The arguments through which a loss names a frozen model besides the one
/// it trains (a distillation teacher, GISTEmbedLoss's guide): the stage
/// builds them, and their outputs are computed once before training.
pub const FROZEN_MODEL_ARGS: &[&str] = &["teacher", "guide"];

/// The lengths a list label may have, counted from the text columns
/// (query, positive, negative_1 .. negative_n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLabel {
    /// No list label.
    No,
    /// One score per candidate (the positive and each negative): n + 1.
    PerCandidate,
    /// One margin per negative (n), or one score per candidate (n + 1),
    /// as MarginMSELoss reads them.
    PerNegativeOrCandidate,
}

impl ListLabel {
    /// The list lengths allowed with `texts` text columns.
    pub fn lengths(self, texts: usize) -> Vec<usize> {
        match self {
            ListLabel::No => Vec::new(),
            ListLabel::PerCandidate => vec![texts.saturating_sub(1)],
            ListLabel::PerNegativeOrCandidate => {
                vec![texts.saturating_sub(2), texts.saturating_sub(1)]
            }
        }
    }
}

impl Columns {
    pub fn describe(&self) -> String {
        let mut s = match self.max_texts {
            Some(m) if m == self.min_texts => format!("{m} text column(s)"),
            Some(m) => format!("{} to {m} text columns", self.min_texts),
            None => format!("{} or more text columns", self.min_texts),
        };
        if !self.texts.is_empty() {
            s.push_str(&format!(" ({})", self.texts.join(", ")));
        }
        match (self.label, self.list_label) {
            (Some(ColType::Float), ListLabel::PerNegativeOrCandidate) => s.push_str(
                " and a `score` column: a float, or a list of one margin per negative or one score per candidate",
            ),
            (Some(ColType::FloatList), ListLabel::PerCandidate) => s.push_str(
                " and a `score` column holding a list of scores, one per candidate (the positive, then each negative)",
            ),
            (Some(t), _) => s.push_str(&format!(
                " and a {} column named `label` or `score`",
                t.noun()
            )),
            (None, _) => s.push_str(" and no label column"),
        }
        if let Some((lo, hi)) = self.label_range {
            s.push_str(&format!(" with values in [{lo}, {hi}]"));
        }
        if let Some(arg) = self.label_from {
            s.push_str(&format!(", or no label column with `{arg}:` given"));
        }
        s
    }
}

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
