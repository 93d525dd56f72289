//! Binding call arguments to registry argument specs, with type checks.

use std::collections::BTreeMap;

use super::{BindKind, Checker};
use crate::check::types::{ArgValue, Args, CallValue, Warmup};
use crate::diag::{Diag, Span};
use crate::registry::{self, ArgSpec, ArgType, Component, Family, Rule};
use crate::syntax::ast::{self, Value, ValueKind};

/// Arguments bound to their specs: value and the span it came from (the
/// call's span for defaults).
pub(crate) type BoundArgs = BTreeMap<String, (ArgValue, Span)>;

/// The values of bound arguments, as the runtime reads them.
pub(crate) fn to_args(comp: &'static Component, bound: &BoundArgs) -> Args {
    Args::new(
        comp,
        bound
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect(),
    )
}

impl Checker<'_> {
    /// Bind `args` of a call to `comp`'s argument specs. Reports unknown,
    /// duplicate, missing and mistyped arguments; `None` if any was wrong.
    /// Defaults are filled in.
    pub(crate) fn bind(
        &mut self,
        comp: &'static Component,
        args: &[ast::Arg],
        call_span: Span,
    ) -> Option<BoundArgs> {
        let what = comp_label(comp);
        let mut out = BoundArgs::new();
        let mut ok = true;
        let mut given: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut pos = 0usize;
        let mut variadic_vals: Option<(&'static ArgSpec, Vec<Value>, Span)> = None;
        for a in args {
            let spec = match &a.name {
                Some(n) => match comp.arg(&n.name) {
                    Some(s) => s,
                    None => {
                        let names: Vec<&str> = comp.args.iter().map(|a| a.name).collect();
                        let help = match registry::did_you_mean(&n.name, names.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None if names.is_empty() => format!("{what} takes no arguments"),
                            None => format!("{what} takes: {}", names.join(", ")),
                        };
                        self.err(
                            Diag::error(
                                "unknown-argument",
                                n.span,
                                format!("unknown argument `{}` of {what}", n.name),
                            )
                            .help(help),
                        );
                        ok = false;
                        continue;
                    }
                },
                None => {
                    // Positional: the next spec not yet given by name.
                    if let Some((_, vals, sp)) = &mut variadic_vals {
                        vals.push(a.value.clone());
                        *sp = Span::new(sp.start, a.span.end);
                        continue;
                    }
                    match comp.args.get(pos) {
                        Some(s) => {
                            pos += 1;
                            if s.variadic {
                                variadic_vals = Some((s, vec![a.value.clone()], a.span));
                                given.insert(s.name, a.span);
                                continue;
                            }
                            s
                        }
                        None => {
                            let n = comp.args.len();
                            let help = if n == 0 {
                                format!("{what} takes no arguments")
                            } else {
                                let names: Vec<&str> = comp.args.iter().map(|a| a.name).collect();
                                format!("{what} takes: {}", names.join(", "))
                            };
                            self.err(
                                Diag::error(
                                    "too-many-arguments",
                                    a.span,
                                    format!("too many arguments for {what} (at most {n})"),
                                )
                                .help(help),
                            );
                            ok = false;
                            continue;
                        }
                    }
                }
            };
            if let Some(prev) = given.get(spec.name) {
                let _ = prev;
                self.err(
                    Diag::error(
                        "duplicate-argument",
                        a.span,
                        format!("argument `{}` of {what} is given twice", spec.name),
                    )
                    .help("give each argument once"),
                );
                ok = false;
                continue;
            }
            given.insert(spec.name, a.span);
            if spec.variadic {
                variadic_vals = None;
                let vals = match &a.value.kind {
                    ValueKind::List(items) => items.clone(),
                    _ => vec![a.value.clone()],
                };
                match self.convert_list(&vals, spec, &what) {
                    Some(v) => {
                        out.insert(spec.name.to_string(), (v, a.span));
                    }
                    None => ok = false,
                }
                continue;
            }
            let ctx = format!("argument `{}` of {what}", spec.name);
            match self
                .convert(&a.value, spec.ty, &ctx)
                .and_then(|v| self.in_range(v, spec, a.value.span, &ctx))
            {
                Some(v) => {
                    out.insert(spec.name.to_string(), (v, a.value.span));
                }
                None => ok = false,
            }
        }
        if let Some((spec, vals, sp)) = variadic_vals {
            // A single list as the only variadic value: its items.
            let vals = match vals.as_slice() {
                [Value {
                    kind: ValueKind::List(items),
                    ..
                }] => items.clone(),
                _ => vals,
            };
            match self.convert_list(&vals, spec, &what) {
                Some(v) => {
                    out.insert(spec.name.to_string(), (v, sp));
                }
                None => ok = false,
            }
        }
        for spec in comp.args {
            if given.contains_key(spec.name) {
                continue;
            }
            if spec.required {
                self.err(
                    Diag::error(
                        "missing-argument",
                        call_span,
                        format!("missing argument `{}` of {what}", spec.name),
                    )
                    .help(format!(
                        "add `{}: ...` ({}): {}",
                        spec.name,
                        spec.ty.describe(),
                        spec.doc
                    )),
                );
                ok = false;
            } else if let Some(v) = spec.default_value() {
                out.insert(spec.name.to_string(), (v, call_span));
            }
        }
        if ok {
            ok = self.check_rules(comp, &out, call_span);
        }
        ok.then_some(out)
    }

    /// `v` when it lies in the argument's declared range.
    fn in_range(&mut self, v: ArgValue, spec: &ArgSpec, span: Span, ctx: &str) -> Option<ArgValue> {
        let Some(x) = v.as_f64() else {
            return Some(v);
        };
        if spec.range.contains(x) {
            return Some(v);
        }
        self.err(
            Diag::error(
                "out-of-range",
                span,
                format!("{ctx} must be {}, not {x}", spec.range.describe()),
            )
            .help(format!("{}: {}", spec.name, spec.doc)),
        );
        None
    }

    /// The component's constraints between arguments.
    fn check_rules(&mut self, comp: &Component, args: &BoundArgs, call_span: Span) -> bool {
        let what = comp_label(comp);
        let mut ok = true;
        for rule in comp.rules {
            let problem = match *rule {
                Rule::AnyTrue(names) => (!names
                    .iter()
                    .any(|n| args.get(*n).and_then(|v| v.0.as_bool()) == Some(true)))
                .then(|| {
                    (
                        call_span,
                        format!("{what} needs one of {} to be true", names.join(", ")),
                    )
                }),
                Rule::Less(a, b) => match (args.get(a), args.get(b)) {
                    (Some((x, sa)), Some((y, _))) => match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) if x >= y => {
                            Some((*sa, format!("`{a}` ({x}) must be below `{b}` ({y})")))
                        }
                        _ => None,
                    },
                    _ => None,
                },
                Rule::OneOf(names) => {
                    let given: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| args.get(*n).is_some_and(|v| v.1 != call_span))
                        .collect();
                    (given.len() > 1).then(|| {
                        (
                            call_span,
                            format!("give only one of {} to {what}", given.join(", ")),
                        )
                    })
                }
                Rule::KeyOf(key, map) => {
                    let keys: Vec<&str> = match args.get(map) {
                        Some((ArgValue::StrMap(m), _)) => {
                            m.iter().map(|(k, _)| k.as_str()).collect()
                        }
                        _ => Vec::new(),
                    };
                    match args.get(key) {
                        Some((v, sp)) if *sp != call_span => {
                            let k = v.as_str().unwrap_or_default();
                            (!keys.contains(&k)).then(|| {
                                let have = if keys.is_empty() {
                                    format!("no `{map}` are given")
                                } else {
                                    format!("`{map}` has {}", keys.join(", "))
                                };
                                (
                                    *sp,
                                    format!(
                                        "`{key}` is `{k}`, which is not one of `{map}`: {have}"
                                    ),
                                )
                            })
                        }
                        _ => None,
                    }
                }
                Rule::SameLength(a, b) => match (args.get(a), args.get(b)) {
                    (Some((ArgValue::List(x), sa)), Some((ArgValue::List(y), _)))
                        if x.len() != y.len() =>
                    {
                        Some((
                            *sa,
                            format!(
                                "`{a}` has {} values and `{b}` has {}; give one per value of `{b}`",
                                x.len(),
                                y.len()
                            ),
                        ))
                    }
                    _ => None,
                },
                Rule::AnyPositive(names) => (!names.iter().any(|n| {
                    args.get(*n)
                        .and_then(|v| v.0.as_f64())
                        .is_some_and(|x| x > 0.0)
                }))
                .then(|| {
                    (
                        call_span,
                        format!("{what} needs one of {} above 0", names.join(", ")),
                    )
                }),
                // A default carries the call's span; a written argument its own.
                Rule::Needs(a, b) => match args.get(a) {
                    Some((_, sa)) if *sa != call_span => {
                        let on = match args.get(b) {
                            None => false,
                            Some((ArgValue::Bool(v), _)) => *v,
                            Some(_) => true,
                        };
                        let flag = comp
                            .args
                            .iter()
                            .any(|s| s.name == b && s.ty == crate::registry::ArgType::Bool);
                        (!on).then(|| {
                            (
                                *sa,
                                match flag {
                                    true => format!("`{a}` has an effect only with `{b}: true`"),
                                    false => format!("`{a}` has an effect only with `{b}` given"),
                                },
                            )
                        })
                    }
                    _ => None,
                },
                // Needs the model's width: see `check_widths`.
                Rule::AtMostWidth(_)
                | Rule::AtMostLayers(_)
                | Rule::Uncached
                | Rule::CopiesModel
                | Rule::TiedDecoder(_)
                | Rule::OneTextColumn(_) => None,
                Rule::WhenTrue(flag, num, range) => {
                    let on = args.get(flag).and_then(|v| v.0.as_bool()) == Some(true);
                    match args.get(num).and_then(|(v, sp)| Some((v.as_f64()?, *sp))) {
                        Some((x, sp)) if on && !range.contains(x) => Some((
                            args.get(flag).map_or(sp, |f| f.1),
                            format!(
                                "`{flag}: true` needs `{num}` {}, but it is {x}",
                                range.describe()
                            ),
                        )),
                        _ => None,
                    }
                }
            };
            if let Some((span, message)) = problem {
                self.err(
                    Diag::error("argument-conflict", span, message)
                        .help(format!("see `{}` in docs/reference.md", comp.name)),
                );
                ok = false;
            }
        }
        ok
    }

    fn convert_list(&mut self, vals: &[Value], spec: &ArgSpec, what: &str) -> Option<ArgValue> {
        let mut items = Vec::new();
        let mut ok = true;
        for v in vals {
            let ctx = format!("argument `{}` of {what}", spec.name);
            match self
                .convert(v, spec.ty, &ctx)
                .and_then(|x| self.in_range(x, spec, v.span, &ctx))
            {
                Some(x) => items.push(x),
                None => ok = false,
            }
        }
        ok.then_some(ArgValue::List(items))
    }

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
        let found = describe_value(&v);
        let mismatch = |this: &mut Self| {
            this.err(
                Diag::error(
                    "type-mismatch",
                    v.span,
                    format!("{ctx} expects {}, found {found}", article(&ty.describe())),
                )
                .help(example_for(ty)),
            );
            None
        };
        match (ty, &v.kind) {
            (ArgType::Int, ValueKind::Int(i)) => Some(ArgValue::Int(*i)),
            (ArgType::Count, ValueKind::Int(i)) => {
                if *i < 0 {
                    self.err(
                        Diag::error(
                            "out-of-range",
                            v.span,
                            format!("{ctx} must not be negative"),
                        )
                        .help("give a count of 0 or more"),
                    );
                    None
                } else {
                    Some(ArgValue::Int(*i))
                }
            }
            (ArgType::Float, ValueKind::Int(i)) => Some(ArgValue::Float(*i as f64)),
            (ArgType::Float, ValueKind::Float(f)) => Some(ArgValue::Float(*f)),
            (ArgType::Prob, ValueKind::Int(_) | ValueKind::Float(_) | ValueKind::Percent(_)) => {
                let f = match v.kind {
                    ValueKind::Int(i) => i as f64,
                    ValueKind::Float(f) => f,
                    ValueKind::Percent(p) => p / 100.0,
                    _ => f64::NAN,
                };
                if (0.0..=1.0).contains(&f) {
                    Some(ArgValue::Float(f))
                } else {
                    self.err(
                        Diag::error(
                            "out-of-range",
                            v.span,
                            format!("{ctx} must be between 0 and 1"),
                        )
                        .help("write a probability such as 0.1 or 10%"),
                    );
                    None
                }
            }
            (ArgType::Bool, ValueKind::Bool(b)) => Some(ArgValue::Bool(*b)),
            (ArgType::Str, ValueKind::Str(s)) => self.interpolate(s, v.span).map(ArgValue::Str),
            (
                ArgType::Choice(choices),
                ValueKind::Ident(ast::Ident { name, .. }) | ValueKind::Str(name),
            ) => match choices.iter().find(|c| c.eq_ignore_ascii_case(name)) {
                Some(c) => Some(ArgValue::Name(c.to_string())),
                None => {
                    let help = match registry::did_you_mean(name, choices.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("choose one of: {}", choices.join(", ")),
                    };
                    self.err(
                        Diag::error(
                            "unknown-choice",
                            v.span,
                            format!("`{name}` is not a valid value for {ctx}"),
                        )
                        .help(help),
                    );
                    None
                }
            },
            (ArgType::Model, ValueKind::Ident(id)) => {
                self.resolve(id, BindKind::Model).map(ArgValue::Name)
            }
            (ArgType::Data, ValueKind::Ident(id)) => {
                self.resolve(id, BindKind::Data).map(ArgValue::Name)
            }
            (ArgType::DataColumns(need), ValueKind::Ident(id)) => {
                let name = self.resolve(id, BindKind::Data)?;
                self.has_columns(&name, need, v.span, ctx)
                    .then_some(ArgValue::Name(name))
            }
            (ArgType::ClassifierObjective, ValueKind::Ident(id)) => {
                let name = self.resolve(id, BindKind::Objective)?;
                self.is_classifier(&name, v.span, ctx)
                    .then_some(ArgValue::Name(name))
            }
            (ArgType::Objective, ValueKind::Ident(id)) => {
                self.resolve(id, BindKind::Objective).map(ArgValue::Name)
            }
            (ArgType::Objectives, ValueKind::Ident(id)) => self
                .resolve(id, BindKind::Objective)
                .map(|n| ArgValue::List(vec![ArgValue::Name(n)])),
            (ArgType::Objectives, ValueKind::List(items)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for it in items {
                    match self.convert(it, ArgType::Objective, ctx) {
                        Some(x) => out.push(x),
                        None => ok = false,
                    }
                }
                ok.then_some(ArgValue::List(out))
            }
            (ArgType::Evaluators, ValueKind::List(items)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for it in items {
                    match &it.kind {
                        ValueKind::Ident(id) => match self.resolve(id, BindKind::Evaluator) {
                            Some(n) => out.push(ArgValue::Name(n)),
                            None => ok = false,
                        },
                        _ => {
                            self.err(
                                Diag::error(
                                    "type-mismatch",
                                    it.span,
                                    format!(
                                        "{ctx} expects evaluator names, found {}",
                                        describe_value(it)
                                    ),
                                )
                                .help(example_for(ArgType::Evaluators)),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(ArgValue::List(out))
            }
            (ArgType::StepsOrPercent, ValueKind::Int(i)) if *i >= 0 => {
                Some(ArgValue::Warmup(Warmup::Steps(*i as u64)))
            }
            (ArgType::StepsOrPercent, ValueKind::Percent(p)) => {
                if (0.0..=100.0).contains(p) {
                    Some(ArgValue::Warmup(Warmup::Fraction(p / 100.0)))
                } else {
                    self.err(
                        Diag::error(
                            "out-of-range",
                            v.span,
                            format!("{ctx} must be between 0% and 100%"),
                        )
                        .help("write a share of all training steps, such as 10%"),
                    );
                    None
                }
            }
            (ArgType::FloatPair, ValueKind::List(items)) if items.len() == 2 => {
                let mut out = Vec::new();
                for it in items {
                    out.push(self.convert(it, ArgType::Float, ctx)?);
                }
                Some(ArgValue::List(out))
            }
            (ArgType::OptimizerCall, _) => self.convert_call(&v, Family::Optimizer, ctx),
            (ArgType::SchedulerCall, _) => self.convert_call(&v, Family::Scheduler, ctx),
            (ArgType::LossCall, _) => self.convert_call(&v, Family::Loss, ctx),
            (
                ArgType::ColumnName,
                ValueKind::Ident(ast::Ident { name, .. }) | ValueKind::Str(name),
            ) => Some(ArgValue::Str(name.clone())),
            (ArgType::LabelValue, ValueKind::Int(i)) => Some(ArgValue::Int(*i)),
            (ArgType::LabelValue, ValueKind::Str(s)) => Some(ArgValue::Str(s.clone())),
            (ArgType::LabelValue, ValueKind::Ident(id)) => Some(ArgValue::Str(id.name.clone())),
            (ArgType::StrMap, ValueKind::Map(entries)) => self.convert_str_map(entries, ctx),
            _ => mismatch(self),
        }
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
                let noun = family.noun();
                self.err(
                    Diag::error(
                        "type-mismatch",
                        v.span,
                        format!(
                            "{ctx} expects {}, found {}",
                            article(noun),
                            describe_value(v)
                        ),
                    )
                    .help(example_for(call_type(family))),
                );
                return None;
            }
        };
        // A binding's name where a component belongs: `MatryoshkaLoss(m)`.
        let bound = self
            .binding_kind(&name.name)
            .filter(|k| *k != BindKind::Let);
        if let (ValueKind::Ident(id), Some(kind)) = (&v.kind, bound) {
            if registry::lookup(family, &id.name).is_none() {
                self.err(
                    Diag::error(
                        "type-mismatch",
                        v.span,
                        format!(
                            "{ctx} expects {}, found `{}`, which is {}",
                            article(family.noun()),
                            id.name,
                            kind.noun()
                        ),
                    )
                    .help(example_for(call_type(family))),
                );
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

/// The argument type of a call of `family`.
fn call_type(family: Family) -> ArgType {
    match family {
        Family::Optimizer => ArgType::OptimizerCall,
        Family::Loss => ArgType::LossCall,
        _ => ArgType::SchedulerCall,
    }
}

fn comp_label(c: &Component) -> String {
    match c.family {
        Family::Stage => "the train stage".to_string(),
        Family::ObjectiveOptions => "the objective".to_string(),
        _ => format!("`{}`", c.name),
    }
}

fn article(s: &str) -> String {
    let first = s.chars().next().unwrap_or('x');
    if "aeiou".contains(first) {
        format!("an {s}")
    } else {
        format!("a {s}")
    }
}

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
