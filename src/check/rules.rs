//! A component's constraints between its arguments ([`Rule`]), checked
//! once the arguments are bound and typed.
//!
//! Each rule is one function that returns the place and message of the
//! problem, if any. A default carries the call's span and a written
//! argument its own, which is how a rule tells a value the user wrote
//! from one the registry filled in. Rules that need the model (its
//! width, its layers, its architecture) or the data are checked later,
//! where those are known (`check_widths` and the objectives' checks).

use super::args::{comp_label, BoundArgs};
use super::types::ArgValue;
use super::Checker;
use crate::diag::{Diag, Span};
use crate::registry::{ArgType, Component, Range, Rule};

/// Where a rule is broken, and how.
type Problem = Option<(Span, String)>;

impl Checker<'_> {
    /// Reports every broken rule of `comp`; whether none was.
    pub(super) fn check_rules(&mut self, comp: &Component, args: &BoundArgs, call: Span) -> bool {
        let mut ok = true;
        for rule in comp.rules {
            if let Some((span, message)) = problem(rule, comp, args, call) {
                self.err(
                    Diag::error("argument-conflict", span, message)
                        .help(format!("see `{}` in docs/reference.md", comp.name)),
                );
                ok = false;
            }
        }
        ok
    }
}

/// What is wrong with `args` under `rule`, if anything.
fn problem(rule: &Rule, comp: &Component, args: &BoundArgs, call: Span) -> Problem {
    match *rule {
        Rule::AnyTrue(names) => any_true(names, comp, args, call),
        Rule::Less(a, b) => less(a, b, args),
        Rule::OneOf(names) => one_of(names, comp, args, call),
        Rule::KeyOf(key, map) => key_of(key, map, args, call),
        Rule::SameLength(a, b) => same_length(a, b, args),
        Rule::AnyPositive(names) => any_positive(names, comp, args, call),
        Rule::Needs(a, b) => needs(a, b, comp, args, call),
        Rule::WhenTrue(flag, num, range) => when_true(flag, num, range, args),
        // Need the model or the data: checked where those are known.
        Rule::AtMostWidth(_)
        | Rule::AtMostLayers(_)
        | Rule::Uncached
        | Rule::CopiesModel
        | Rule::TiedDecoder(_)
        | Rule::OneTextColumn(_) => None,
    }
}

fn any_true(names: &[&str], comp: &Component, args: &BoundArgs, call: Span) -> Problem {
    let on = |n: &&str| args.get(*n).and_then(|v| v.0.as_bool()) == Some(true);
    (!names.iter().any(on)).then(|| {
        let what = comp_label(comp);
        (
            call,
            format!("{what} needs one of {} to be true", names.join(", ")),
        )
    })
}

fn less(a: &str, b: &str, args: &BoundArgs) -> Problem {
    let ((x, sa), (y, _)) = (args.get(a)?, args.get(b)?);
    match (x.as_f64(), y.as_f64()) {
        (Some(x), Some(y)) if x >= y => {
            Some((*sa, format!("`{a}` ({x}) must be below `{b}` ({y})")))
        }
        _ => None,
    }
}

fn one_of(names: &[&str], comp: &Component, args: &BoundArgs, call: Span) -> Problem {
    let given: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| args.get(*n).is_some_and(|v| v.1 != call))
        .collect();
    (given.len() > 1).then(|| {
        let what = comp_label(comp);
        (
            call,
            format!("give only one of {} to {what}", given.join(", ")),
        )
    })
}

fn key_of(key: &str, map: &str, args: &BoundArgs, call: Span) -> Problem {
    let keys: Vec<&str> = match args.get(map) {
        Some((ArgValue::StrMap(m), _)) => m.iter().map(|(k, _)| k.as_str()).collect(),
        _ => Vec::new(),
    };
    let (v, sp) = args.get(key).filter(|(_, sp)| *sp != call)?;
    let k = v.as_str().unwrap_or_default();
    (!keys.contains(&k)).then(|| {
        let have = if keys.is_empty() {
            format!("no `{map}` are given")
        } else {
            format!("`{map}` has {}", keys.join(", "))
        };
        (
            *sp,
            format!("`{key}` is `{k}`, which is not one of `{map}`: {have}"),
        )
    })
}

fn same_length(a: &str, b: &str, args: &BoundArgs) -> Problem {
    match (args.get(a)?, args.get(b)?) {
        ((ArgValue::List(x), sa), (ArgValue::List(y), _)) if x.len() != y.len() => Some((
            *sa,
            format!(
                "`{a}` has {} values and `{b}` has {}; give one per value of `{b}`",
                x.len(),
                y.len()
            ),
        )),
        _ => None,
    }
}

fn any_positive(names: &[&str], comp: &Component, args: &BoundArgs, call: Span) -> Problem {
    let positive = |n: &&str| {
        args.get(*n)
            .and_then(|v| v.0.as_f64())
            .is_some_and(|x| x > 0.0)
    };
    (!names.iter().any(positive)).then(|| {
        let what = comp_label(comp);
        (
            call,
            format!("{what} needs one of {} above 0", names.join(", ")),
        )
    })
}

/// `a`, when written, has an effect only with `b` given (and true, for a
/// flag).
fn needs(a: &str, b: &str, comp: &Component, args: &BoundArgs, call: Span) -> Problem {
    let (_, sa) = args.get(a).filter(|(_, sa)| *sa != call)?;
    let on = match args.get(b) {
        None => false,
        Some((ArgValue::Bool(v), _)) => *v,
        Some(_) => true,
    };
    let flag = comp
        .args
        .iter()
        .any(|s| s.name == b && s.ty == ArgType::Bool);
    (!on).then(|| {
        let message = if flag {
            format!("`{a}` has an effect only with `{b}: true`")
        } else {
            format!("`{a}` has an effect only with `{b}` given")
        };
        (*sa, message)
    })
}

fn when_true(flag: &str, num: &str, range: Range, args: &BoundArgs) -> Problem {
    let on = args.get(flag).and_then(|v| v.0.as_bool()) == Some(true);
    let (x, sp) = args.get(num).and_then(|(v, sp)| Some((v.as_f64()?, *sp)))?;
    (on && !range.contains(x)).then(|| {
        (
            args.get(flag).map_or(sp, |f| f.1),
            format!(
                "`{flag}: true` needs `{num}` {}, but it is {x}",
                range.describe()
            ),
        )
    })
}
