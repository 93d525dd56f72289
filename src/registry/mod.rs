//! The component registry: one description of every module, loss,
//! evaluator, data reader, transform, optimizer and scheduler, with its
//! arguments, the data columns it needs and the metrics it produces.
//!
//! The checker validates pipelines against it, `stpipe components` prints
//! it, and the runtime dispatches on the same names.

mod evaluators;
mod losses;
mod modules;
mod optim;
mod readers;
mod stage;

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
    /// An objective binding.
    Objective,
    /// A list of objective bindings.
    Objectives,
    /// An integer number of steps or a percentage of all steps (`10%`).
    StepsOrPercent,
    /// A list of two floats.
    FloatPair,
    /// An optimizer call, `AdamW(lr: 2e-5)`.
    OptimizerCall,
    /// A scheduler call, `WarmupLinear(warmup: 10%)`.
    SchedulerCall,
    /// A column name of the input data source.
    ColumnName,
    /// An integer or string label value.
    LabelValue,
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
            ArgType::Objective => "objective".into(),
            ArgType::Objectives => "list of objectives".into(),
            ArgType::StepsOrPercent => "steps (integer) or percentage of all steps".into(),
            ArgType::FloatPair => "list of two numbers".into(),
            ArgType::OptimizerCall => "optimizer".into(),
            ArgType::SchedulerCall => "scheduler".into(),
            ArgType::ColumnName => "column name".into(),
            ArgType::LabelValue => "label (integer or string)".into(),
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
    pub doc: &'static str,
}

/// A required argument.
pub const fn req(name: &'static str, ty: ArgType, doc: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: true,
        default: None,
        variadic: false,
        doc,
    }
}

/// An optional argument with a default.
pub const fn opt(
    name: &'static str,
    ty: ArgType,
    default: &'static str,
    doc: &'static str,
) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: false,
        default: Some(default),
        variadic: false,
        doc,
    }
}

/// An optional argument without a default.
pub const fn maybe(name: &'static str, ty: ArgType, doc: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: false,
        default: None,
        variadic: false,
        doc,
    }
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
}

impl ColType {
    pub fn noun(self) -> &'static str {
        match self {
            ColType::Text => "text",
            ColType::Float => "float score",
            ColType::Int => "integer label",
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
        match self.label {
            Some(t) => s.push_str(&format!(
                " and a {} column named `label` or `score`",
                t.noun()
            )),
            None => s.push_str(" and no label column"),
        }
        s
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
    /// Metrics produced (evaluators); the first is the primary one.
    pub metrics: &'static [&'static str],
}

impl Component {
    pub fn arg(&self, name: &str) -> Option<&'static ArgSpec> {
        self.args.iter().find(|a| a.name == name)
    }
}

/// Every registered component, in reference order.
pub fn all() -> Vec<&'static Component> {
    let mut v: Vec<&'static Component> = Vec::new();
    v.extend(modules::ALL.iter());
    v.extend(losses::ALL.iter());
    v.extend(evaluators::ALL.iter());
    v.extend(readers::ALL.iter());
    v.extend(optim::OPTIMIZERS.iter());
    v.extend(optim::SCHEDULERS.iter());
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
        (Family::Evaluator, "Evaluators", "`evaluator e = Evaluator(model, DATA, ...)`; metrics are named in `expect` and `save ... best by`."),
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
                    let _ = writeln!(s, "| {name} | {} | {def} | {} |", a.ty.describe(), a.doc);
                }
                s.push('\n');
            }
            if let Some(cols) = c.columns {
                let _ = writeln!(s, "Data: {}.\n", cols.describe());
            }
            if !c.metrics.is_empty() {
                let m: Vec<String> = c.metrics.iter().map(|m| format!("`{m}`")).collect();
                let _ = writeln!(s, "Metrics (primary first): {}.\n", m.join(", "));
            }
        }
    }
    s
}
