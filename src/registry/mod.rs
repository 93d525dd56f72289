//! The component registry: one description of every module, loss,
//! evaluator, data reader, transform, optimizer and scheduler (its name,
//! its arguments with types, defaults and ranges, the data columns it
//! needs and the metrics it produces), each written once, next to the code
//! that implements it, in the component's own file.
//!
//! [`catalogue`] lists the entries. An entry pairs the description with
//! the constructor the runtime calls, so a component cannot be registered
//! (and so accepted by `stpipe check`) without an implementation. The
//! checker reads only the descriptions; the runtime reads the typed
//! [`Args`] the checker resolved (defaults included) through the same
//! argument names; `stpipe components` prints the descriptions.

pub mod args;
pub mod catalogue;
pub mod choices;
pub mod columns;
mod stage;

pub use args::{ArgError, ArgValue, Args, CallValue, Warmup};
pub use choices::Choice;

use std::fmt::Write as _;

/// What kind of component an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// A module of a model chain (`Transformer`, `Pooling`, ...).
    Module,
    Loss,
    Evaluator,
    /// A data file reader (`tsv`, `csv`, `jsonl`).
    Reader,
    /// A data source built from other sources (`zip`, `triplets`).
    Transform,
    Optimizer,
    Scheduler,
    /// Settings of a `train { ... }` block.
    Stage,
    /// Options of an objective (`on DATA (batch_size: 16)`).
    ObjectiveOptions,
}

impl Family {
    pub fn noun(self) -> &'static str {
        match self {
            Family::Module => "module",
            Family::Loss => "loss",
            Family::Evaluator => "evaluator",
            Family::Reader => "data reader",
            Family::Transform => "data transform",
            Family::Optimizer => "optimizer",
            Family::Scheduler => "scheduler",
            Family::Stage => "train stage",
            Family::ObjectiveOptions => "objective options",
        }
    }

    /// The noun in the plural.
    pub fn plural(self) -> String {
        match self {
            Family::Loss => "losses".into(),
            Family::ObjectiveOptions => "objective options".into(),
            f => format!("{}s", f.noun()),
        }
    }
}

/// The type of an argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgType {
    Int,
    /// A non-negative integer.
    Count,
    Float,
    /// A float in [0, 1].
    Prob,
    Bool,
    Str,
    /// One of a fixed set of bare words.
    Choice(&'static [&'static str]),
    /// A model binding.
    Model,
    /// A data source binding.
    Data,
    /// A data source binding that must have these named columns.
    DataColumns(&'static [&'static str]),
    /// An objective binding.
    Objective,
    /// An objective whose loss trains a classifier (its labels are classes
    /// `0..n` of an argument, as SoftmaxLoss's `num_labels`).
    ClassifierObjective,
    /// A list of objective bindings.
    Objectives,
    /// A list of evaluator bindings (Sequential); the checker replaces
    /// each name by the evaluator's checked call.
    Evaluators,
    /// An integer number of steps or a percentage of all steps (`10%`).
    StepsOrPercent,
    /// A list of two floats.
    FloatPair,
    /// An optimizer call, `AdamW(lr: 2e-5)`.
    OptimizerCall,
    /// A scheduler call, `WarmupLinear(warmup: 10%)`.
    SchedulerCall,
    /// A loss call, the loss a wrapper such as MatryoshkaLoss modifies:
    /// `MultipleNegativesRankingLoss(m)`.
    LossCall,
    /// A column name of the input data source.
    ColumnName,
    /// An integer or string label value.
    LabelValue,
    /// A map from names to strings, `{query: "query: ", document: "passage: "}`.
    StrMap,
}

impl ArgType {
    pub fn describe(&self) -> String {
        match self {
            ArgType::Int => "integer".into(),
            ArgType::Count => "non-negative integer".into(),
            ArgType::Float => "number".into(),
            ArgType::Prob => "number in [0, 1]".into(),
            ArgType::Bool => "true or false".into(),
            ArgType::Str => "string".into(),
            ArgType::Choice(c) => format!("one of {}", c.join(", ")),
            ArgType::Model => "model".into(),
            ArgType::Data => "data source".into(),
            ArgType::DataColumns(c) => format!("data source with columns {}", c.join(", ")),
            ArgType::Objective => "objective".into(),
            ArgType::ClassifierObjective => "objective with a classifier (SoftmaxLoss)".into(),
            ArgType::Objectives => "list of objectives".into(),
            ArgType::Evaluators => "list of evaluators".into(),
            ArgType::StepsOrPercent => "steps (integer) or percentage of all steps".into(),
            ArgType::FloatPair => "list of two numbers".into(),
            ArgType::OptimizerCall => "optimizer".into(),
            ArgType::SchedulerCall => "scheduler".into(),
            ArgType::LossCall => "loss".into(),
            ArgType::ColumnName => "column name".into(),
            ArgType::LabelValue => "label (integer or string)".into(),
            ArgType::StrMap => "map from names to strings".into(),
        }
    }
}

/// The values a numeric argument may take (checked by `stpipe check`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    /// Lower bound and whether it is allowed.
    pub lo: Option<(f64, bool)>,
    /// Upper bound and whether it is allowed.
    pub hi: Option<(f64, bool)>,
}

impl Range {
    /// Whether `v` lies in the range.
    pub fn contains(&self, v: f64) -> bool {
        let lo_ok = match self.lo {
            None => true,
            Some((l, true)) => v >= l,
            Some((l, false)) => v > l,
        };
        let hi_ok = match self.hi {
            None => true,
            Some((h, true)) => v <= h,
            Some((h, false)) => v < h,
        };
        v.is_finite() && lo_ok && hi_ok
    }

    /// `> 0`, `>= 1`, `in [0, 1)`; empty when unbounded.
    pub fn describe(&self) -> String {
        let op = |inclusive: bool, lower: bool| match (inclusive, lower) {
            (true, true) => ">=",
            (false, true) => ">",
            (true, false) => "<=",
            (false, false) => "<",
        };
        match (self.lo, self.hi) {
            (None, None) => String::new(),
            (Some((l, li)), None) => format!("{} {l}", op(li, true)),
            (None, Some((h, hi))) => format!("{} {h}", op(hi, false)),
            (Some((l, li)), Some((h, hi))) => format!(
                "in {}{l}, {h}{}",
                if li { "[" } else { "(" },
                if hi { "]" } else { ")" }
            ),
        }
    }
}

/// One argument of a component.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub name: &'static str,
    pub ty: ArgType,
    pub required: bool,
    /// The default value, as it would be written in a pipeline.
    pub default: Option<&'static str>,
    /// Takes all remaining positional arguments (or a list).
    pub variadic: bool,
    /// The values a number may take.
    pub range: Range,
    pub doc: &'static str,
}

impl ArgSpec {
    /// Only values above `lo`.
    pub const fn above(mut self, lo: f64) -> Self {
        self.range.lo = Some((lo, false));
        self
    }

    /// Only values of at least `lo`.
    pub const fn at_least(mut self, lo: f64) -> Self {
        self.range.lo = Some((lo, true));
        self
    }

    /// Only values below `hi`.
    pub const fn below(mut self, hi: f64) -> Self {
        self.range.hi = Some((hi, false));
        self
    }

    /// Only values of at most `hi`.
    pub const fn at_most(mut self, hi: f64) -> Self {
        self.range.hi = Some((hi, true));
        self
    }

    /// Takes all remaining positional arguments (or a list).
    pub const fn variadic(mut self) -> Self {
        self.variadic = true;
        self
    }

    /// The default as a value, parsed from its pipeline spelling.
    pub fn default_value(&self) -> Option<ArgValue> {
        default_value(self.default?, self)
    }
}

const fn spec(
    name: &'static str,
    ty: ArgType,
    required: bool,
    default: Option<&'static str>,
    doc: &'static str,
) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required,
        default,
        variadic: false,
        range: Range { lo: None, hi: None },
        doc,
    }
}

/// A required argument.
pub const fn req(name: &'static str, ty: ArgType, doc: &'static str) -> ArgSpec {
    spec(name, ty, true, None, doc)
}

/// An optional argument with a default.
pub const fn opt(
    name: &'static str,
    ty: ArgType,
    default: &'static str,
    doc: &'static str,
) -> ArgSpec {
    spec(name, ty, false, Some(default), doc)
}

/// An optional argument without a default.
pub const fn maybe(name: &'static str, ty: ArgType, doc: &'static str) -> ArgSpec {
    spec(name, ty, false, None, doc)
}

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

/// Where a module may stand in a model chain and how wide its output is,
/// for the checker's width and order checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleShape {
    /// Starts a chain; its width comes from the model directory
    /// (`Transformer`: token embeddings of `hidden_size`; `load`: a saved
    /// sentence-transformers model, pooled when it has a Pooling).
    Base,
    /// Token embeddings to sentence embeddings; the width multiplies by
    /// the number of values of the variadic argument.
    Pool { modes: &'static str },
    /// Sentence embeddings of the width given by `out` (and, when the
    /// optional argument `input` is given, it must equal the incoming width).
    Project {
        out: &'static str,
        input: &'static str,
    },
    /// Sentence embeddings in, the same width out.
    Keep,
    /// Token or sentence embeddings, the same width out.
    Any,
}

/// A constraint between arguments, checked by `stpipe check`.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// At least one of these `Bool` arguments must be true.
    AnyTrue(&'static [&'static str]),
    /// The first number must be below the second (when both are given).
    Less(&'static str, &'static str),
    /// At most one of these arguments may be given.
    OneOf(&'static [&'static str]),
    /// When the `Bool` argument is true, the number must lie in the range.
    WhenTrue(&'static str, &'static str, Range),
    /// The string argument (when given) must be a key of the `StrMap` one.
    KeyOf(&'static str, &'static str),
    /// At least one of these numbers must be above 0.
    AnyPositive(&'static [&'static str]),
    /// The two list arguments (when both are given) must be equally long.
    SameLength(&'static str, &'static str),
    /// The count (or every count of the list) may not exceed the width of
    /// the model's sentence embeddings: a truncation dimension. A loss
    /// wrapper with such a rule truncates embeddings, so it cannot wrap a
    /// loss whose classifier is sized for the full width.
    AtMostWidth(&'static str),
    /// The first argument, when written, has an effect only with the
    /// second given (and true, for a `Bool`): writing it otherwise is an
    /// error rather than silently ignored.
    Needs(&'static str, &'static str),
    /// The count may not exceed the model's number of Transformer layers.
    AtMostLayers(&'static str),
    /// A loss wrapper that needs the whole batch's embeddings of every
    /// layer at once: the loss it wraps may not run under GradCache.
    Uncached,
    /// The loss trains an independent copy of the model beside it
    /// (ContrastiveTension): twice the model's weights and optimizer state,
    /// and it cannot be wrapped (it embeds the texts itself).
    CopiesModel,
    /// The loss decodes the texts with a decoder that shares the model's
    /// weights (TSDAE): the model's Transformer must be one of these
    /// architectures (`model_type`), and the loss cannot be wrapped.
    TiedDecoder(&'static [&'static str]),
    /// The argument, when written, has an effect only on data with one
    /// text column (a loss that makes its inputs from single sentences):
    /// writing it for pairs is an error rather than silently ignored.
    OneTextColumn(&'static str),
}

impl Rule {
    /// The rule in words, for the reference.
    pub fn describe(&self) -> String {
        match *self {
            Rule::AnyTrue(names) => format!("at least one of `{}` is true", names.join("`, `")),
            Rule::Less(a, b) => format!("`{a}` is below `{b}`"),
            Rule::OneOf(names) => format!("at most one of `{}` is given", names.join("`, `")),
            Rule::WhenTrue(flag, num, range) => {
                format!("with `{flag}: true`, `{num}` is {}", range.describe())
            }
            Rule::KeyOf(key, map) => format!("`{key}` is a key of `{map}`"),
            Rule::SameLength(a, b) => format!("`{a}` has as many values as `{b}`"),
            Rule::AnyPositive(names) => {
                format!("at least one of `{}` is above 0", names.join("`, `"))
            }
            Rule::AtMostWidth(name) => {
                format!("`{name}` is at most the model's embedding width")
            }
            Rule::Uncached => "the wrapped loss does not run under GradCache".to_string(),
            Rule::Needs(a, b) => format!("`{a}` is written only together with `{b}`"),
            Rule::AtMostLayers(name) => format!("`{name}` is at most the model's number of layers"),
            Rule::CopiesModel => {
                "trains a copy of the model beside it (twice its memory); cannot be wrapped"
                    .to_string()
            }
            Rule::OneTextColumn(name) => {
                format!("`{name}` is written only for data with one text column")
            }
            Rule::TiedDecoder(types) => format!(
                "the model's Transformer is one of `{}`; cannot be wrapped",
                types.join("`, `")
            ),
        }
    }
}

/// One registered component.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub name: &'static str,
    pub family: Family,
    pub doc: &'static str,
    pub args: &'static [ArgSpec],
    /// Data columns needed (losses, evaluators).
    pub columns: Option<Columns>,
    /// Metrics produced (evaluators), exactly; the first is the primary one.
    pub metrics: &'static [&'static str],
    /// Constraints between arguments.
    pub rules: &'static [Rule],
}

impl Component {
    /// The fields every component may leave out:
    /// `Component { name, family, doc, args, ..Component::BASE }`.
    pub const BASE: Component = Component {
        name: "",
        family: Family::Module,
        doc: "",
        args: &[],
        columns: None,
        metrics: &[],
        rules: &[],
    };

    pub fn arg(&self, name: &str) -> Option<&'static ArgSpec> {
        self.args.iter().find(|a| a.name == name)
    }
}

/// Every registered component, in reference order.
pub fn all() -> Vec<&'static Component> {
    let mut v: Vec<&'static Component> = catalogue::components().collect();
    v.push(&stage::STAGE);
    v.push(&stage::OBJECTIVE_OPTIONS);
    v
}

/// The components of one family.
pub fn family(f: Family) -> Vec<&'static Component> {
    all().into_iter().filter(|c| c.family == f).collect()
}

/// Find a component by name in one family. Names match case-insensitively
/// (`WarmupLinear` = `warmuplinear`).
pub fn lookup(f: Family, name: &str) -> Option<&'static Component> {
    family(f)
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The settings of a train stage.
pub fn stage() -> &'static Component {
    &stage::STAGE
}

/// The options of an objective.
pub fn objective_options() -> &'static Component {
    &stage::OBJECTIVE_OPTIONS
}

/// The closest of `candidates` to `name`, if it is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The reference of every component, as Markdown (`docs/reference.md`).
pub fn reference_markdown() -> String {
    let mut s = String::new();
    s.push_str("# stpipe component reference\n\n");
    s.push_str(
        "<!-- Generated from the registry (src/registry/) by `stpipe components`.\n     \
         Do not edit: regenerate with `cargo run -q -- components > docs/reference.md`. -->\n\n",
    );
    let families = [
        (Family::Module, "Modules", "Links of a model chain: `model m = Transformer(...) -> Pooling(mean)`."),
        (Family::Loss, "Losses", "Used in objectives: `objective o = Loss(model, ...) on DATA (batch_size: 16)`."),
        (Family::Evaluator, "Evaluators", "`evaluator e = Evaluator(model, DATA, ...)`; metrics are named in `expect` and `save ... best by`. An evaluator encodes its texts longest first by token count, at most `batch_size` texts per forward; on the CPU a forward also holds at most 1,024 padded token rows (a longer text goes alone), which keeps its activations in the caches; `STPIPE_BATCH_TOKENS=N` sets another limit on any device, `0` none. A text's embedding never depends on the texts beside it, so neither bound changes a result."),
        (Family::Reader, "Data readers", "`data d = reader(path, ...) { column: expr, ... } limit N`."),
        (Family::Transform, "Data transforms", "Data sources built from other data sources."),
        (Family::Optimizer, "Optimizers", "`optimizer: AdamW(lr: 2e-5)` in a train stage."),
        (Family::Scheduler, "Learning-rate schedulers", "`scheduler: WarmupLinear(warmup: 10%)` in a train stage."),
        (Family::Stage, "Train stage settings", "`train MODEL [as NAME] { ... }`."),
        (Family::ObjectiveOptions, "Objective options", "`objective o = ... on DATA (options)`."),
    ];
    for (f, title, intro) in families {
        let _ = writeln!(s, "## {title}\n\n{intro}\n");
        for c in family(f) {
            let _ = writeln!(s, "### `{}`\n\n{}\n", c.name, c.doc);
            if !c.args.is_empty() {
                s.push_str("| argument | type | default | description |\n|---|---|---|---|\n");
                for a in c.args {
                    let def = match (a.required, a.default) {
                        (true, _) => "required".to_string(),
                        (false, Some(d)) => format!("`{d}`"),
                        (false, None) => "none".to_string(),
                    };
                    let name = if a.variadic {
                        format!("`{}...`", a.name)
                    } else {
                        format!("`{}`", a.name)
                    };
                    let range = a.range.describe();
                    let ty = if range.is_empty() {
                        a.ty.describe()
                    } else {
                        format!("{}, {range}", a.ty.describe())
                    };
                    let _ = writeln!(s, "| {name} | {ty} | {def} | {} |", a.doc);
                }
                s.push('\n');
            }
            if let Some(cols) = c.columns {
                let _ = writeln!(s, "Data: {}.\n", cols.describe());
            }
            if !c.rules.is_empty() {
                let r: Vec<String> = c.rules.iter().map(Rule::describe).collect();
                let _ = writeln!(s, "Rules: {}.\n", r.join("; "));
            }
            if !c.metrics.is_empty() {
                let m: Vec<String> = c.metrics.iter().map(|m| format!("`{m}`")).collect();
                let _ = writeln!(s, "Metrics (primary first): {}.\n", m.join(", "));
            }
        }
    }
    s
}

/// The registry default of an argument as a value: its pipeline spelling
/// parsed by the grammar (`20.0`, `10%`, `[0.9, 0.999]`, `AdamW()`).
fn default_value(text: &str, spec: &ArgSpec) -> Option<ArgValue> {
    use crate::syntax::ast::{StmtKind, ValueKind};
    let file = crate::syntax::parse(&format!("let d = {text}")).ok()?;
    let StmtKind::Let { value, .. } = &file.stmts.first()?.kind else {
        return None;
    };
    Some(match (&spec.ty, &value.kind) {
        (ArgType::Float | ArgType::Prob, ValueKind::Int(i)) => ArgValue::Float(*i as f64),
        (ArgType::StepsOrPercent, ValueKind::Int(i)) => ArgValue::Warmup(Warmup::Steps(*i as u64)),
        (ArgType::StepsOrPercent, ValueKind::Percent(p)) => {
            ArgValue::Warmup(Warmup::Fraction(p / 100.0))
        }
        (_, ValueKind::Int(i)) => ArgValue::Int(*i),
        (_, ValueKind::Float(f)) => ArgValue::Float(*f),
        (_, ValueKind::Bool(b)) => ArgValue::Bool(*b),
        (_, ValueKind::Str(s)) => ArgValue::Str(s.clone()),
        (_, ValueKind::Ident(id)) => ArgValue::Name(id.name.clone()),
        (_, ValueKind::List(items)) => ArgValue::List(
            items
                .iter()
                .filter_map(|i| match &i.kind {
                    ValueKind::Float(f) => Some(ArgValue::Float(*f)),
                    ValueKind::Int(n) => Some(ArgValue::Float(*n as f64)),
                    ValueKind::Ident(id) => Some(ArgValue::Name(id.name.clone())),
                    _ => None,
                })
                .collect(),
        ),
        (_, ValueKind::Call(c)) => {
            let fam = match spec.ty {
                ArgType::OptimizerCall => Family::Optimizer,
                ArgType::LossCall => Family::Loss,
                _ => Family::Scheduler,
            };
            let comp = lookup(fam, &c.name.name)?;
            let mut args = Args::defaults(comp);
            for a in &c.args {
                if let (Some(n), Some(spec)) =
                    (&a.name, a.name.as_ref().and_then(|n| comp.arg(&n.name)))
                {
                    let txt = match &a.value.kind {
                        ValueKind::Int(i) => i.to_string(),
                        ValueKind::Percent(p) => format!("{p}%"),
                        ValueKind::Float(f) => format!("{f:?}"),
                        _ => continue,
                    };
                    if let Some(v) = default_value(&txt, spec) {
                        args = args.with(&n.name, v);
                    }
                }
            }
            ArgValue::Call(CallValue {
                name: comp.name.to_string(),
                args,
                binding: None,
            })
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_and_lies_in_its_range() {
        for c in all() {
            for a in c.args {
                if let Some(text) = a.default {
                    let Some(v) = a.default_value() else {
                        // Documented defaults that are not values (a
                        // description such as "the first text column").
                        assert!(
                            matches!(a.ty, ArgType::ColumnName | ArgType::Str),
                            "{}.{}: default `{text}` does not parse",
                            c.name,
                            a.name
                        );
                        continue;
                    };
                    if let Some(x) = v.as_f64() {
                        assert!(a.range.contains(x), "{}.{} = {x}", c.name, a.name);
                    }
                }
            }
        }
    }

    #[test]
    fn names_are_unique_within_a_family() {
        let all = all();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    !(a.family == b.family && a.name.eq_ignore_ascii_case(b.name)),
                    "{} twice",
                    a.name
                );
            }
        }
    }
}
