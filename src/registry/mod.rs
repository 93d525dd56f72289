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
mod reference;
mod rule;
mod spec;
mod stage;

pub use args::{ArgError, ArgValue, Args, CallValue, Warmup};
pub use choices::Choice;
pub use columns::{ColType, Columns, ListLabel, FROZEN_MODEL_ARGS};
pub use reference::reference_markdown;
pub use rule::Rule;
pub use spec::{maybe, opt, req, ArgSpec, ArgType, Range};

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
