//! Converting one written value to an argument's type ([`ArgType`]):
//! numbers and their ranges, literals, references to bindings, and the
//! calls of components that are arguments themselves (an optimizer, a
//! scheduler, a wrapped loss). Every mismatch is reported with the value's
//! place and an example of what fits.

use super::args::to_args;
use super::types::{ArgValue, CallValue, Warmup};
use super::{BindKind, Checker};
use crate::diag::{Diag, Span};
use crate::registry::{self, ArgType, Component, Family};
use crate::syntax::ast::{self, Value, ValueKind};

/// What a conversion made of a value.
enum Converted {
    /// The value, of the type.
    Value(ArgValue),
    /// The value fits the type's form but is wrong; it has been reported.
    Reported,
    /// The value's form does not fit the type (reported by the caller as
    /// a type mismatch).
    Mismatch,
}

impl From<Option<ArgValue>> for Converted {
    fn from(v: Option<ArgValue>) -> Self {
        v.map_or(Converted::Reported, Converted::Value)
    }
}

impl Checker<'_> {
    /// Substitute `let` names (to a fixed depth).
    pub(crate) fn deref_let(&mut self, v: &Value) -> Value {
        let mut cur = v.clone();
        for _ in 0..8 {
            let ValueKind::Ident(id) = &cur.kind else {
                break;
            };
            let Some(val) = self.lets.get(&id.name).cloned() else {
                break;
            };
            if let Some(b) = self.bindings.get_mut(&id.name) {
                b.used = true;
            }
            // Keep the use site's span for messages.
            cur = Value {
                kind: val.kind,
                span: v.span,
            };
        }
        cur
    }

    /// Convert one value to `ty`, reporting a mismatch against `ctx`.
    pub(crate) fn convert(&mut self, v: &Value, ty: ArgType, ctx: &str) -> Option<ArgValue> {
        let v = self.deref_let(v);
        let converted = match ty {
            ArgType::Int
            | ArgType::Count
            | ArgType::Float
            | ArgType::Prob
            | ArgType::StepsOrPercent
            | ArgType::FloatPair => self.convert_number(&v, ty, ctx),
            ArgType::Model
            | ArgType::Data
            | ArgType::DataColumns(_)
            | ArgType::ClassifierObjective
            | ArgType::Objective
            | ArgType::Objectives
            | ArgType::Evaluators => self.convert_reference(&v, ty, ctx),
            ArgType::OptimizerCall => self.convert_call(&v, Family::Optimizer, ctx).into(),
            ArgType::SchedulerCall => self.convert_call(&v, Family::Scheduler, ctx).into(),
            ArgType::LossCall => self.convert_call(&v, Family::Loss, ctx).into(),
            ArgType::Bool
            | ArgType::Str
            | ArgType::Choice(_)
            | ArgType::ColumnName
            | ArgType::LabelValue
            | ArgType::StrMap => self.convert_literal(&v, ty, ctx),
        };
        match converted {
            Converted::Value(x) => Some(x),
            Converted::Reported => None,
            Converted::Mismatch => {
                self.mismatch(v.span, ty, ctx, &describe_value(&v));
                None
            }
        }
    }

    /// Reports a value of the wrong form for `ty`.
    fn mismatch(&mut self, span: Span, ty: ArgType, ctx: &str, found: &str) {
        self.err(
            Diag::error(
                "type-mismatch",
                span,
                format!("{ctx} expects {}, found {found}", article(&ty.describe())),
            )
            .help(example_for(ty)),
        );
    }

    /// Reports a number outside what the type allows.
    fn out_of_range(&mut self, span: Span, message: String, help: &str) -> Converted {
        self.err(Diag::error("out-of-range", span, message).help(help));
        Converted::Reported
    }

    /// Integers, counts, floats, probabilities, warm-ups and pairs.
    fn convert_number(&mut self, v: &Value, ty: ArgType, ctx: &str) -> Converted {
        let number = match v.kind {
            ValueKind::Int(i) => Some(i as f64),
            ValueKind::Float(f) => Some(f),
            ValueKind::Percent(p) => Some(p / 100.0),
            _ => None,
        };
        match (ty, &v.kind) {
            (ArgType::Int, ValueKind::Int(i)) => Converted::Value(ArgValue::Int(*i)),
            (ArgType::Count, ValueKind::Int(i)) if *i < 0 => self.out_of_range(
                v.span,
                format!("{ctx} must not be negative"),
                "give a count of 0 or more",
            ),
            (ArgType::Count, ValueKind::Int(i)) => Converted::Value(ArgValue::Int(*i)),
            (ArgType::Float, ValueKind::Int(_) | ValueKind::Float(_)) => {
                Converted::Value(ArgValue::Float(number.unwrap_or(f64::NAN)))
            }
            (ArgType::Prob, _) => match number {
                Some(f) if (0.0..=1.0).contains(&f) => Converted::Value(ArgValue::Float(f)),
                Some(_) => self.out_of_range(
                    v.span,
                    format!("{ctx} must be between 0 and 1"),
                    "write a probability such as 0.1 or 10%",
                ),
                None => Converted::Mismatch,
            },
            (ArgType::StepsOrPercent, ValueKind::Int(i)) if *i >= 0 => {
                Converted::Value(ArgValue::Warmup(Warmup::Steps(*i as u64)))
            }
            (ArgType::StepsOrPercent, ValueKind::Percent(p)) if (0.0..=100.0).contains(p) => {
                Converted::Value(ArgValue::Warmup(Warmup::Fraction(p / 100.0)))
            }
            (ArgType::StepsOrPercent, ValueKind::Percent(_)) => self.out_of_range(
                v.span,
                format!("{ctx} must be between 0% and 100%"),
                "write a share of all training steps, such as 10%",
            ),
            (ArgType::FloatPair, ValueKind::List(items)) if items.len() == 2 => {
                let mut out = Vec::new();
                for it in items {
                    match self.convert(it, ArgType::Float, ctx) {
                        Some(x) => out.push(x),
                        None => return Converted::Reported,
                    }
                }
                Converted::Value(ArgValue::List(out))
            }
            _ => Converted::Mismatch,
        }
    }

    /// Flags, strings, choices, column names, labels and string maps.
    fn convert_literal(&mut self, v: &Value, ty: ArgType, ctx: &str) -> Converted {
        match (ty, &v.kind) {
            (ArgType::Bool, ValueKind::Bool(b)) => Converted::Value(ArgValue::Bool(*b)),
            (ArgType::Str, ValueKind::Str(s)) => {
                self.interpolate(s, v.span).map(ArgValue::Str).into()
            }
            (
                ArgType::Choice(choices),
                ValueKind::Ident(ast::Ident { name, .. }) | ValueKind::Str(name),
            ) => self.convert_choice(name, choices, v.span, ctx).into(),
            (
                ArgType::ColumnName,
                ValueKind::Ident(ast::Ident { name, .. }) | ValueKind::Str(name),
            ) => Converted::Value(ArgValue::Str(name.clone())),
            (ArgType::LabelValue, ValueKind::Int(i)) => Converted::Value(ArgValue::Int(*i)),
            (ArgType::LabelValue, ValueKind::Str(s)) => Converted::Value(ArgValue::Str(s.clone())),
            (ArgType::LabelValue, ValueKind::Ident(id)) => {
                Converted::Value(ArgValue::Str(id.name.clone()))
            }
            (ArgType::StrMap, ValueKind::Map(entries)) => self.convert_str_map(entries, ctx).into(),
            _ => Converted::Mismatch,
        }
    }

    /// One of a fixed set of words, in any case; the registry's spelling.
    fn convert_choice(
        &mut self,
        name: &str,
        choices: &[&str],
        span: Span,
        ctx: &str,
    ) -> Option<ArgValue> {
        if let Some(c) = choices.iter().find(|c| c.eq_ignore_ascii_case(name)) {
            return Some(ArgValue::Name(c.to_string()));
        }
        let help = match registry::did_you_mean(name, choices.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("choose one of: {}", choices.join(", ")),
        };
        self.err(
            Diag::error(
                "unknown-choice",
                span,
                format!("`{name}` is not a valid value for {ctx}"),
            )
            .help(help),
        );
        None
    }

    /// Names of models, data sources, objectives and evaluators.
    fn convert_reference(&mut self, v: &Value, ty: ArgType, ctx: &str) -> Converted {
        match (ty, &v.kind) {
            (ArgType::Model, ValueKind::Ident(id)) => {
                self.resolve(id, BindKind::Model).map(ArgValue::Name).into()
            }
            (ArgType::Data, ValueKind::Ident(id)) => {
                self.resolve(id, BindKind::Data).map(ArgValue::Name).into()
            }
            (ArgType::DataColumns(need), ValueKind::Ident(id)) => self
                .resolve(id, BindKind::Data)
                .filter(|name| self.has_columns(name, need, v.span, ctx))
                .map(ArgValue::Name)
                .into(),
            (ArgType::ClassifierObjective, ValueKind::Ident(id)) => self
                .resolve(id, BindKind::Objective)
                .filter(|name| self.is_classifier(name, v.span, ctx))
                .map(ArgValue::Name)
                .into(),
            (ArgType::Objective, ValueKind::Ident(id)) => self
                .resolve(id, BindKind::Objective)
                .map(ArgValue::Name)
                .into(),
            (ArgType::Objectives, ValueKind::Ident(id)) => self
                .resolve(id, BindKind::Objective)
                .map(|n| ArgValue::List(vec![ArgValue::Name(n)]))
                .into(),
            (ArgType::Objectives, ValueKind::List(items)) => {
                let names: Vec<_> = items
                    .iter()
                    .map(|it| self.convert(it, ArgType::Objective, ctx))
                    .collect();
                all_or_reported(names)
            }
            (ArgType::Evaluators, ValueKind::List(items)) => {
                let names: Vec<_> = items
                    .iter()
                    .map(|it| self.evaluator_name(it, ctx))
                    .collect();
                all_or_reported(names)
            }
            _ => Converted::Mismatch,
        }
    }

    /// One item of a list of evaluators: a name bound by `evaluator`.
    fn evaluator_name(&mut self, it: &Value, ctx: &str) -> Option<ArgValue> {
        if let ValueKind::Ident(id) = &it.kind {
            return self.resolve(id, BindKind::Evaluator).map(ArgValue::Name);
        }
        let found = describe_value(it);
        self.err(
            Diag::error(
                "type-mismatch",
                it.span,
                format!("{ctx} expects evaluator names, found {found}"),
            )
            .help(example_for(ArgType::Evaluators)),
        );
        None
    }

    /// `{name: "text", ...}`: string values, each name once.
    fn convert_str_map(&mut self, entries: &[(ast::MapKey, Value)], ctx: &str) -> Option<ArgValue> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            if seen.contains(&k.text.as_str()) {
                self.err(
                    Diag::error(
                        "duplicate-key",
                        k.span,
                        format!("`{}` appears twice in {ctx}", k.text),
                    )
                    .help("give each name once"),
                );
                ok = false;
                continue;
            }
            seen.push(&k.text);
            match self.convert(v, ArgType::Str, &format!("`{}` of {ctx}", k.text)) {
                Some(ArgValue::Str(s)) => out.push((k.text.clone(), s)),
                _ => ok = false,
            }
        }
        ok.then_some(ArgValue::StrMap(out))
    }

    /// `Name(args)` or a bare `Name` of `family`.
    fn convert_call(&mut self, v: &Value, family: Family, ctx: &str) -> Option<ArgValue> {
        let (name, args, span) = match &v.kind {
            ValueKind::Call(c) => (&c.name, c.args.as_slice(), c.span),
            ValueKind::Ident(id) => (id, &[][..], id.span),
            _ => {
                self.mismatch(v.span, call_type(family), ctx, &describe_value(v));
                return None;
            }
        };
        // A binding's name where a component belongs: `MatryoshkaLoss(m)`.
        let bound = self
            .binding_kind(&name.name)
            .filter(|k| *k != BindKind::Let);
        if let (ValueKind::Ident(id), Some(kind)) = (&v.kind, bound) {
            if registry::lookup(family, &id.name).is_none() {
                let found = format!("`{}`, which is {}", id.name, kind.noun());
                self.mismatch(v.span, call_type(family), ctx, &found);
                return None;
            }
        }
        let comp = self.lookup_component(family, name)?;
        let args = self.bind(comp, args, span)?;
        Some(ArgValue::Call(CallValue {
            name: comp.name.to_string(),
            args: to_args(comp, &args),
            binding: None,
        }))
    }

    /// A registry component by name, reporting unknown names with
    /// did-you-mean.
    pub(crate) fn lookup_component(
        &mut self,
        family: Family,
        name: &ast::Ident,
    ) -> Option<&'static Component> {
        if let Some(c) = registry::lookup(family, &name.name) {
            return Some(c);
        }
        let names: Vec<&str> = registry::family(family).iter().map(|c| c.name).collect();
        let help = match registry::did_you_mean(&name.name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known {}: {}", family.plural(), names.join(", ")),
        };
        self.err(
            Diag::error(
                "unknown-name",
                name.span,
                format!("unknown {} `{}`", family.noun(), name.name),
            )
            .help(help),
        );
        None
    }
}

/// A list of converted items: the list when every item converted (each
/// failure has been reported).
fn all_or_reported(items: Vec<Option<ArgValue>>) -> Converted {
    items
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(ArgValue::List)
        .into()
}

/// The argument type of a call of `family`.
fn call_type(family: Family) -> ArgType {
    match family {
        Family::Optimizer => ArgType::OptimizerCall,
        Family::Loss => ArgType::LossCall,
        _ => ArgType::SchedulerCall,
    }
}

/// `a word` or `an word`.
fn article(s: &str) -> String {
    let first = s.chars().next().unwrap_or('x');
    if "aeiou".contains(first) {
        format!("an {s}")
    } else {
        format!("a {s}")
    }
}

/// A value as a message names it: "the integer 3", "a list".
pub(crate) fn describe_value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Int(i) => format!("the integer {i}"),
        ValueKind::Float(f) => format!("the number {f}"),
        ValueKind::Percent(p) => format!("the percentage {p}%"),
        ValueKind::Bool(b) => format!("`{b}`"),
        ValueKind::Str(_) => "a string".into(),
        ValueKind::List(_) => "a list".into(),
        ValueKind::Map(_) => "a map".into(),
        ValueKind::Call(c) => format!("a call of `{}`", c.name.name),
        ValueKind::Ident(id) => format!("the name `{}`", id.name),
    }
}

/// The help line of a type mismatch: what a value of `ty` looks like.
fn example_for(ty: ArgType) -> String {
    match ty {
        ArgType::Int | ArgType::Count => "write an integer, e.g. `16`".into(),
        ArgType::Float | ArgType::Prob => "write a number, e.g. `0.5`".into(),
        ArgType::Bool => "write `true` or `false`".into(),
        ArgType::Str => "write a string in double quotes".into(),
        ArgType::Choice(c) => format!("write one of: {}", c.join(", ")),
        ArgType::Model => "name a model defined with `model NAME = ...`".into(),
        ArgType::Data => "name a data source defined with `data NAME = ...`".into(),
        ArgType::DataColumns(c) => format!(
            "name a data source whose column block names the columns {}",
            c.join(", ")
        ),
        ArgType::ClassifierObjective => {
            "name an objective whose loss trains a classifier (SoftmaxLoss)".into()
        }
        ArgType::Objective | ArgType::Objectives => {
            "name objectives defined with `objective NAME = ...`, e.g. `[sim, nli]`".into()
        }
        ArgType::Evaluators => {
            "name evaluators defined with `evaluator NAME = ...` before this one, e.g. `[dev, test]`".into()
        }
        ArgType::StepsOrPercent => "write a number of steps (`100`) or a percentage (`10%`)".into(),
        ArgType::FloatPair => "write two numbers, e.g. `[0.9, 0.999]`".into(),
        ArgType::OptimizerCall => "write an optimizer, e.g. `AdamW(lr: 2e-5)`".into(),
        ArgType::SchedulerCall => "write a scheduler, e.g. `WarmupLinear(warmup: 10%)`".into(),
        ArgType::LossCall => "write a loss, e.g. `MultipleNegativesRankingLoss(model)`".into(),
        ArgType::ColumnName => "name a column of the source".into(),
        ArgType::LabelValue => "write a label, e.g. `0` or `\"entailment\"`".into(),
        ArgType::StrMap => {
            "write a map of strings, e.g. `{query: \"query: \", document: \"passage: \"}`".into()
        }
    }
}
