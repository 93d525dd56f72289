//! The checked, resolved pipeline: what the planner and the engine consume.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::diag::Span;
pub use crate::registry::ColType;
pub use crate::syntax::ast::{ArithOp, CmpOp};

/// A whole checked pipeline. Bindings keep their source order; `steps` are
/// the statements that do something (`train`, `save`, `expect`), to be run
/// in order.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Pipeline {
    /// The pipeline file (absolute when known).
    pub file: PathBuf,
    /// Directory relative paths were resolved from.
    pub base_dir: PathBuf,
    pub models: Vec<Model>,
    pub data: Vec<DataSource>,
    pub objectives: Vec<Objective>,
    pub evaluators: Vec<Evaluator>,
    pub steps: Vec<Step>,
}

impl Pipeline {
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }
    pub fn data_source(&self, name: &str) -> Option<&DataSource> {
        self.data.iter().find(|m| m.name == name)
    }
    pub fn objective(&self, name: &str) -> Option<&Objective> {
        self.objectives.iter().find(|m| m.name == name)
    }
    pub fn evaluator(&self, name: &str) -> Option<&Evaluator> {
        self.evaluators.iter().find(|m| m.name == name)
    }
    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.steps.iter().filter_map(|s| match s {
            Step::Train(t) => Some(t),
            _ => None,
        })
    }
}

/// A model: a chain of modules and the width of its embeddings.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    pub modules: Vec<Module>,
    /// Width of the sentence embedding, when it can be known statically.
    pub dim: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolingMode {
    Cls,
    Mean,
    Max,
    MeanSqrtLenTokens,
    WeightedMean,
    LastToken,
}

impl PoolingMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "cls" => PoolingMode::Cls,
            "mean" => PoolingMode::Mean,
            "max" => PoolingMode::Max,
            "mean_sqrt_len_tokens" => PoolingMode::MeanSqrtLenTokens,
            "weightedmean" => PoolingMode::WeightedMean,
            "lasttoken" => PoolingMode::LastToken,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Tanh,
    Identity,
    Relu,
    Gelu,
    Sigmoid,
}

impl Activation {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "tanh" => Activation::Tanh,
            "identity" => Activation::Identity,
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "sigmoid" => Activation::Sigmoid,
            _ => return None,
        })
    }
}

/// One module of a model chain, with its resolved dimensions.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Module {
    Transformer {
        /// The spec as written (path or Hub id).
        model: String,
        /// The directory found locally, if any.
        dir: Option<PathBuf>,
        max_seq_length: Option<usize>,
        do_lower_case: bool,
        /// `hidden_size` from config.json.
        hidden_size: Option<usize>,
    },
    /// A whole saved sentence-transformers model.
    Pretrained {
        model: String,
        dir: Option<PathBuf>,
        dim: Option<usize>,
    },
    Pooling {
        modes: Vec<PoolingMode>,
        in_dim: Option<usize>,
        out_dim: Option<usize>,
    },
    Dense {
        in_features: Option<usize>,
        out_features: usize,
        activation: Activation,
        bias: bool,
    },
    Normalize,
    LayerNorm {
        dim: Option<usize>,
    },
    Dropout {
        p: f64,
    },
}

/// How a file is read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Format {
    Delimited {
        delimiter: char,
        header: bool,
        /// CSV-style double quotes (with `""` escapes).
        quoting: bool,
    },
    JsonLines,
    /// SMART records (`.I id`, `.T` title, `.A` author, `.B` biblio, `.W`
    /// text), as in the Cranfield collection. Fields: id, title, author,
    /// biblio, text.
    Smart {
        /// Number records 1, 2, 3... in file order instead of using `.I`.
        ids_by_position: bool,
    },
}

/// Where a source's rows come from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DataKind {
    File {
        /// Absolute (or base-dir-joined) path.
        path: PathBuf,
        /// The path as written, after interpolation.
        written: String,
        format: Format,
        /// Count and skip rows that cannot be read instead of stopping.
        skip_bad_rows: bool,
    },
    /// Row-by-row join of line-aligned sources.
    Zip { sources: Vec<String> },
    /// (anchor, positive, negative) triplets grouped on a column.
    Triplets {
        source: String,
        by: String,
        text: String,
        label: String,
        positive: LabelValue,
        negative: LabelValue,
    },
    /// Another source (typically with a different `limit`).
    Ref { source: String },
}

/// A label value as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LabelValue {
    Int(i64),
    Str(String),
}

/// A field of a file row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldRef {
    Index(usize),
    Name(String),
}

/// How a column's value is computed from a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnExpr {
    Field {
        field: FieldRef,
    },
    Const {
        value: f64,
    },
    Arith {
        op: ArithOpName,
        lhs: Box<ColumnExpr>,
        rhs: Box<ColumnExpr>,
    },
    /// Text (or number) to integer label.
    Map {
        input: Box<ColumnExpr>,
        map: Vec<(String, i64)>,
    },
}

/// Serializable arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArithOpName {
    Add,
    Sub,
    Mul,
    Div,
}

impl From<ArithOp> for ArithOpName {
    fn from(o: ArithOp) -> Self {
        match o {
            ArithOp::Add => ArithOpName::Add,
            ArithOp::Sub => ArithOpName::Sub,
            ArithOp::Mul => ArithOpName::Mul,
            ArithOp::Div => ArithOpName::Div,
        }
    }
}

/// An output column of a data source.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    /// `None` for derived sources (zip, triplets, ref): taken from inputs.
    pub expr: Option<ColumnExpr>,
    /// The type, when known (from the expression or the file's first rows).
    pub ty: Option<ColType>,
    /// Values of the file's first rows, when known (for diagnostics).
    #[serde(skip)]
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataSource {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    pub kind: DataKind,
    pub columns: Vec<Column>,
    pub limit: Option<usize>,
}

impl DataSource {
    /// The label column (named `label` or `score`), following
    /// sentence-transformers.
    pub fn label_column(&self) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name == "label" || c.name == "score")
    }
    /// The text columns: all the others, in order.
    pub fn text_columns(&self) -> Vec<&Column> {
        self.columns
            .iter()
            .filter(|c| c.name != "label" && c.name != "score")
            .collect()
    }
}

/// A resolved argument value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A bare word from a fixed set, or a binding name.
    Name(String),
    List(Vec<ArgValue>),
    Warmup(Warmup),
    Call(CallValue),
}

impl ArgValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ArgValue::Int(i) => Some(*i as f64),
            ArgValue::Float(f) => Some(*f),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ArgValue::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ArgValue::Str(s) | ArgValue::Name(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ArgValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// A component call with all its arguments resolved (defaults included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallValue {
    pub name: String,
    pub args: BTreeMap<String, ArgValue>,
}

/// Warm-up length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    Steps(u64),
    /// A share of all training steps, in [0, 1].
    Fraction(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    Default,
    NoDuplicates,
    GroupByLabel,
}

#[derive(Debug, Clone, Serialize)]
pub struct Objective {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    /// Registry name of the loss.
    pub loss: String,
    pub model: String,
    pub data: String,
    /// Loss arguments other than the model, defaults included.
    pub args: BTreeMap<String, ArgValue>,
    pub batch_size: usize,
    pub shuffle: bool,
    pub sampler: Sampler,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluator {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    /// Registry name of the evaluator.
    pub kind: String,
    pub model: String,
    pub data: String,
    /// Other arguments, defaults included.
    pub args: BTreeMap<String, ArgValue>,
    /// Metrics produced, primary first.
    pub metrics: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mixing {
    RoundRobin,
    Proportional,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `train m as NAME`, else `stage<N>` (1-based among stages).
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    pub model: String,
    pub objectives: Vec<String>,
    pub epochs: usize,
    pub max_steps: Option<u64>,
    pub optimizer: CallValue,
    pub scheduler: CallValue,
    pub warmup: Warmup,
    pub max_grad_norm: f64,
    pub gradient_accumulation: usize,
    pub seed: u64,
    pub mixing: Mixing,
    /// Evaluators run during training (at each epoch end, and every
    /// `evaluate_every` steps when set).
    pub evaluate: Vec<String>,
    pub evaluate_every: Option<u64>,
    /// Evaluate once before training (the baseline, logged as step 0).
    pub evaluate_at_start: bool,
    pub checkpoint_every: Option<u64>,
    pub checkpoint_keep: Option<usize>,
    /// Frozen models the objectives also read (distillation teachers).
    pub teachers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricRef {
    pub evaluator: String,
    pub metric: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Save {
    pub model: String,
    pub path: PathBuf,
    /// Keep the checkpoint with the best value of this metric.
    pub best_by: Option<MetricRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    pub metric: MetricRef,
    pub op: &'static str,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    Train(Stage),
    Save(Save),
    Expect(Expect),
}
