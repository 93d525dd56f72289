//! The checked, resolved pipeline: what the planner and the engine consume.

use std::path::PathBuf;

use serde::Serialize;

pub use crate::data::Format;
use crate::diag::Span;
pub use crate::registry::choices::{
    Activation, Mixing, PoolingMode, Precision, Sampler, Similarity,
};
pub use crate::registry::{ArgValue, Args, CallValue, ColType, Warmup};
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
    /// The environment variables the pipeline's strings read, with their
    /// values: never written to the run directory or printed (see
    /// [`Pipeline::redact`]).
    #[serde(skip)]
    pub env_used: std::collections::BTreeMap<String, String>,
}

impl Pipeline {
    /// `text` with every environment value the pipeline read (of 4
    /// characters or more) written back as `${NAME}`: what the run
    /// directory and the terminal get, so that a secret in the environment
    /// is never recorded.
    pub fn redact(&self, text: &str) -> String {
        let mut pairs: Vec<(&String, &String)> = self
            .env_used
            .iter()
            .filter(|(_, v)| v.chars().count() >= 4)
            .collect();
        // Longest values first, so that one inside another is not split.
        pairs.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for (name, value) in pairs {
            out = out.replace(value.as_str(), &format!("${{{name}}}"));
        }
        out
    }

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
    /// The Transformer's number of layers, when its directory is local.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
    /// The Transformer's `model_type`, when its directory is local.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The Transformer's width (before pooling and Dense), when its
    /// directory is local.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
}

/// One module of a model chain, with its checked arguments and resolved
/// widths.
#[derive(Debug, Clone, Serialize)]
pub struct Module {
    /// The registry name (`Transformer`, `Pooling`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub args: Args,
    /// The model directory found locally, for a chain's base (Transformer,
    /// load), if any.
    pub dir: Option<PathBuf>,
    /// The width of what flows in, when known.
    pub in_dim: Option<usize>,
    /// The width of what flows out, when known.
    pub out_dim: Option<usize>,
}

impl Module {
    /// The model spec (path or Hub id) of a chain's base.
    pub fn model_spec(&self) -> Option<&str> {
        self.args.values().get("model").and_then(ArgValue::as_str)
    }

    /// How the module reads in a pipeline: `Dense(256, tanh)`.
    pub fn label(&self) -> String {
        call_label(&self.kind, &self.args)
    }
}

/// A component with its checked arguments as a pipeline would read:
/// `AdamW(lr: 2e-05, weight_decay: 0.01)`; `skip` leaves arguments out
/// (the model a loss reads, said elsewhere).
pub fn call_label_without(name: &str, args: &crate::registry::Args, skip: &[&str]) -> String {
    let args: Vec<String> = args
        .values()
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {}", value_label(v)))
        .collect();
    if args.is_empty() {
        name.to_string()
    } else {
        format!("{name}({})", args.join(", "))
    }
}

/// [`call_label_without`] with every argument.
pub fn call_label(name: &str, args: &crate::registry::Args) -> String {
    call_label_without(name, args, &[])
}

fn value_label(v: &ArgValue) -> String {
    match v {
        ArgValue::Int(i) => i.to_string(),
        // Small rates as people write them: 2e-5, not 0.00002.
        ArgValue::Float(f) if *f != 0.0 && f.abs() < 1e-3 => format!("{f:e}"),
        ArgValue::Float(f) => f.to_string(),
        ArgValue::Bool(b) => b.to_string(),
        ArgValue::Str(s) => format!("{s:?}"),
        ArgValue::Name(n) => n.clone(),
        ArgValue::Warmup(crate::registry::Warmup::Steps(n)) => format!("{n}"),
        ArgValue::Warmup(crate::registry::Warmup::Fraction(f)) => format!("{}%", f * 100.0),
        ArgValue::Call(c) => call_label(&c.name, &c.args),
        ArgValue::List(l) => {
            let items: Vec<String> = l.iter().map(value_label).collect();
            format!("[{}]", items.join(", "))
        }
        ArgValue::StrMap(m) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
            format!("{{{}}}", items.join(", "))
        }
    }
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
    /// The result of a transform that describes itself in the registry
    /// (its `columns` and `apply`): `split`, `relevant_pairs`,
    /// `mine_hard_negatives`.
    Derived {
        transform: String,
        args: crate::registry::Args,
        /// The sources its `Data` arguments name, in argument order.
        inputs: Vec<String>,
    },
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
    /// Element `index` (from 0) of a list field: `item(col("pos"), 0)`,
    /// and each text column that `take` of a list of texts becomes.
    Item {
        input: Box<ColumnExpr>,
        index: usize,
    },
    /// The first `n` elements of a list field, as a list of scores:
    /// `score: take(col("scores"), 4)`.
    Take {
        input: Box<ColumnExpr>,
        n: usize,
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
    /// The length of every row's list, for a [`ColType::FloatList`] column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_len: Option<usize>,
}

impl Column {
    /// A column of a derived source, of a known type.
    pub fn derived(name: &str, ty: ColType) -> Column {
        Column {
            name: name.to_string(),
            expr: None,
            ty: Some(ty),
            samples: Vec::new(),
            list_len: None,
        }
    }

    /// Column `c` of an input, as a derived source passes it on.
    pub fn derived_from(c: &Column) -> Column {
        Column {
            name: c.name.clone(),
            expr: None,
            ty: c.ty,
            samples: c.samples.clone(),
            list_len: c.list_len,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DataSource {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    pub kind: DataKind,
    pub columns: Vec<Column>,
    pub limit: Option<usize>,
    /// What the losses and evaluators reading this source require of its
    /// labels; the runtime checks every row (the checker could only see
    /// the first ones).
    #[serde(default)]
    pub label_checks: Vec<LabelCheck>,
}

/// A requirement on every label of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelCheck {
    /// The component that requires it (`CosineSimilarityLoss`).
    pub by: String,
    /// Labels must lie in this range.
    pub range: Option<(f64, f64)>,
    /// Labels must be classes `0..n`.
    pub classes: Option<i64>,
}

impl DataSource {
    /// Whether the source is the result of a costly transform that the
    /// run records and reuses (`mine_hard_negatives`).
    pub fn is_recorded(&self) -> bool {
        match &self.kind {
            DataKind::Derived { transform, .. } => {
                crate::registry::catalogue::transform(transform).is_some_and(|e| e.recorded)
            }
            _ => false,
        }
    }

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

#[derive(Debug, Clone, Serialize)]
pub struct Objective {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    /// Registry name of the loss.
    pub loss: String,
    pub model: String,
    pub data: String,
    /// Every loss argument (the model too), defaults included.
    pub args: Args,
    pub batch_size: usize,
    pub shuffle: bool,
    pub sampler: Sampler,
    /// Prompts by text column name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<(String, String)>,
}

impl Objective {
    /// The loss that sees the data: the objective's own, or the one its
    /// wrappers wrap (`MatryoshkaLoss(MultipleNegativesRankingLoss(m))`
    /// gives MultipleNegativesRankingLoss), with its arguments.
    pub fn base_loss(&self) -> (&str, &Args) {
        let (mut name, mut args) = (self.loss.as_str(), &self.args);
        while let Some(ArgValue::Call(c)) = args.values().get(WRAPPED_LOSS) {
            name = &c.name;
            args = &c.args;
        }
        (name, args)
    }
}

/// The argument through which a wrapper loss names the loss it wraps.
pub const WRAPPED_LOSS: &str = "loss";

#[derive(Debug, Clone, Serialize)]
pub struct Evaluator {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
    /// Registry name of the evaluator.
    pub kind: String,
    pub model: String,
    pub data: String,
    /// Every argument (model and data too), defaults included.
    pub args: Args,
    /// Metrics produced, primary first.
    pub metrics: Vec<String>,
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
    /// The number format of the training step's linear layers. Left out
    /// of the serialized stage when f32, so that the fingerprints of
    /// stages written before the setting existed stay what they were
    /// (their plan caches and checkpoints still resume).
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
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
    /// Where the path is written.
    #[serde(skip)]
    pub span: Span,
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
