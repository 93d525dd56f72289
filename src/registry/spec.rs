//! How an argument is described: its type ([`ArgType`]), the values a
//! number may take ([`Range`]), and the spec itself ([`ArgSpec`]: name,
//! type, default, documentation), with the constructors entries use
//! (`req`, `opt`, `maybe`) and the parsing of a default's spelling into a
//! value.

use super::{lookup, ArgValue, Args, CallValue, Family, Warmup};

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
