//! The closed sets of bare words a pipeline may write (`Pooling(mean)`,
//! `activation: tanh`, `distance: euclidean`), one enum per concept.
//!
//! The checker validates a word against `NAMES`, the runtime turns the
//! checked word back into the enum with [`Choice::from_name`]; behaviour
//! (a pooling's config key, a similarity's tensor math) is added to the
//! same enum by `impl` blocks next to the code that needs it. There is no
//! second copy of any of these sets anywhere in the crate.

/// A closed set of words, as a Rust enum.
pub trait Choice: Sized + Copy + 'static {
    /// Every word, in the enum's order (which is meaningful where the
    /// enum says so, e.g. pooling modes concatenate in this order).
    const NAMES: &'static [&'static str];
    /// The value named `name` (case-insensitive).
    fn from_name(name: &str) -> Option<Self>;
    /// The word of this value.
    fn name(self) -> &'static str;
    /// Every value, in `NAMES` order.
    fn all() -> Vec<Self> {
        Self::NAMES
            .iter()
            .filter_map(|n| Self::from_name(n))
            .collect()
    }
}

/// Declares an enum whose variants are spelled by the given words.
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant ),+
        }

        impl $name {
            /// Every word, in the enum's order.
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            /// The value named `name` (case-insensitive).
            pub fn from_name(name: &str) -> Option<Self> {
                $( if name.eq_ignore_ascii_case($word) { return Some($name::$variant); } )+
                None
            }

            /// The word of this value.
            pub fn name(self) -> &'static str {
                match self { $( $name::$variant => $word ),+ }
            }

            /// Every value, in `NAMES` order.
            pub fn all() -> Vec<Self> {
                vec![$($name::$variant),+]
            }
        }

        impl Choice for $name {
            const NAMES: &'static [&'static str] = $name::NAMES;

            fn from_name(name: &str) -> Option<Self> {
                $name::from_name(name)
            }

            fn name(self) -> &'static str {
                $name::name(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

choice_enum! {
    /// How token embeddings become one sentence embedding. Several modes
    /// concatenate in this order (sentence-transformers' order).
    pub enum PoolingMode {
        /// The first token's embedding (`[CLS]`).
        Cls = "cls",
        /// The element-wise maximum over real tokens.
        Max = "max",
        /// The mean over real tokens.
        Mean = "mean",
        /// The sum over real tokens divided by the square root of their count.
        MeanSqrtLenTokens = "mean_sqrt_len_tokens",
        /// A mean weighted by position (later tokens weigh more).
        WeightedMean = "weightedmean",
        /// The last real token's embedding.
        LastToken = "lasttoken",
    }
}

choice_enum! {
    /// The activation after a Dense layer's linear map.
    pub enum Activation {
        Tanh = "tanh",
        Identity = "identity",
        Relu = "relu",
        Gelu = "gelu",
        Sigmoid = "sigmoid",
    }
}

choice_enum! {
    /// How two embeddings are compared. As a similarity (larger is more
    /// alike): cosine, dot product, negative Euclidean and negative
    /// Manhattan distance (sentence-transformers' `cos_sim`, `dot_score`,
    /// `euclidean_sim`, `manhattan_sim`). As a distance (smaller is more
    /// alike): `1 - cosine`, Euclidean and Manhattan distance; the dot
    /// product has no distance.
    pub enum Similarity {
        Cosine = "cosine",
        Dot = "dot",
        Euclidean = "euclidean",
        Manhattan = "manhattan",
    }
}

impl Similarity {
    /// The similarities that are also distances, for `distance:` arguments.
    pub const DISTANCES: &'static [&'static str] = &["cosine", "euclidean", "manhattan"];
    /// The distances of the batch triplet losses (a pairwise matrix).
    pub const BATCH_DISTANCES: &'static [&'static str] = &["euclidean", "cosine"];
}

choice_enum! {
    /// How an objective's examples are grouped into batches.
    pub enum Sampler {
        /// Shuffled (or in order) examples, cut into batches.
        Default = "default",
        /// No text twice in a batch (for in-batch negatives).
        NoDuplicates = "no_duplicates",
        /// Several examples of each label per batch (batch triplet losses).
        GroupByLabel = "group_by_label",
    }
}

choice_enum! {
    /// How the batches of several objectives of a stage interleave.
    pub enum Mixing {
        /// One batch of each objective in turn.
        RoundRobin = "round_robin",
        /// Batches in proportion to the objectives' sizes, shuffled.
        Proportional = "proportional",
    }
}

choice_enum! {
    /// The number format of the training step's linear layers (the
    /// counterpart of the Trainer's `bf16=True`). Weights, optimizer state,
    /// layer norms, softmax, attention scores and losses stay f32 either
    /// way, and so do evaluation and encoding.
    pub enum Precision {
        /// Every product in f32.
        Fp32 = "fp32",
        /// Every linear layer of the trained models (the Transformer's
        /// projections, Dense modules, a decoder's) multiplies operands
        /// rounded to bf16 (to nearest, ties to even), forward and
        /// backward, the gradient operand included, and sums in f32. On
        /// CPUs with AVX512-BF16 (`vdpbf16ps`) this is faster than f32;
        /// elsewhere the same rounding runs over f32 products, slower.
        Bf16 = "bf16",
    }
}

impl Precision {
    /// Whether this is the default, f32.
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

choice_enum! {
    /// Quoting of delimited files.
    pub enum Quoting {
        /// Fields may be double-quoted, `""` escapes a quote.
        Csv = "csv",
        /// Quotes are ordinary characters.
        None = "none",
    }
}

choice_enum! {
    /// Where the ids of SMART records come from.
    pub enum SmartIds {
        /// The `.I` line of each record.
        File = "file",
        /// 1, 2, 3... in file order.
        Position = "position",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for m in PoolingMode::all() {
            assert_eq!(PoolingMode::from_name(m.name()), Some(m));
        }
        assert_eq!(PoolingMode::all().len(), PoolingMode::NAMES.len());
        assert_eq!(Activation::from_name("TANH"), Some(Activation::Tanh));
        assert_eq!(Similarity::from_name("jaccard"), None);
        for d in Similarity::DISTANCES
            .iter()
            .chain(Similarity::BATCH_DISTANCES)
        {
            assert!(Similarity::from_name(d).is_some());
        }
        assert_eq!(
            serde_json::to_string(&PoolingMode::WeightedMean).unwrap(),
            "\"weightedmean\""
        );
    }
}

choice_enum! {
    /// How a loss computed per text column combines its columns.
    pub enum Aggregation {
        Mean = "mean",
        Sum = "sum",
    }
}

choice_enum! {
    /// How GISTEmbedLoss decides that an in-batch candidate is a false
    /// negative, from the guide's similarities.
    pub enum MarginStrategy {
        /// More similar than `positive - margin`.
        Absolute = "absolute",
        /// More similar than `positive - |positive| * margin`.
        Relative = "relative",
    }
}

choice_enum! {
    /// How AdaptiveLayerLoss weights the loss of earlier layer `i`.
    pub enum LayerWeighting {
        /// 1 for every layer.
        Uniform = "uniform",
        /// `1 / (1 + ln(1 + i))` (the ESE paper).
        Log = "log",
        /// `1 / (1 + i)`.
        Linear = "linear",
    }
}

choice_enum! {
    /// Which part of a `split` a source keeps (`training`, since `train`
    /// is a keyword of the language).
    pub enum SplitPart {
        Train = "training",
        Test = "test",
    }
}

choice_enum! {
    /// How `mine_hard_negatives` picks among a query's candidates.
    pub enum NegativeSampling {
        /// The most similar ones.
        Top = "top",
        /// A uniform draw among those that pass the filters.
        Random = "random",
    }
}

choice_enum! {
    /// The rows `mine_hard_negatives` produces (sentence-transformers'
    /// `output_format`).
    pub enum MinedFormat {
        /// (anchor, positive, negative): one row per negative.
        Triplet = "triplet",
        /// (anchor, positive, negative_1, ..., negative_n): one row per
        /// pair that found all its negatives.
        NTuple = "n_tuple",
        /// (anchor, text, label): the positives labelled 1, the negatives 0.
        LabeledPair = "labeled_pair",
    }
}

choice_enum! {
    /// How a Sequential evaluator's score comes from its parts' primary
    /// metrics (sentence-transformers' `main_score_function`; `last` is
    /// its default).
    pub enum MainScore {
        Last = "last",
        First = "first",
        Mean = "mean",
        Min = "min",
        Max = "max",
    }
}
