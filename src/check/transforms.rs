//! Data transforms that describe their own results in the registry
//! (`split`, `relevant_pairs`, `mine_hard_negatives`): the checker hands
//! the checked arguments and the sources they name to the transform's
//! `columns`, and reports its problem at the argument it names.

use super::args::{to_args, BoundArgs};
use super::Checker;
use crate::check::types::{Column, DataKind};
use crate::diag::{Diag, Span};
use crate::registry::{ArgType, Component};
use crate::runtime::data::{ColumnsFn, TransformInput};

impl Checker<'_> {
    pub(crate) fn check_derived(
        &mut self,
        comp: &'static Component,
        bound: &BoundArgs,
        columns: ColumnsFn,
        at: Span,
    ) -> Option<(DataKind, Vec<Column>)> {
        let args = to_args(comp, bound);
        // Data steps run before every stage: a transform that encodes
        // with a model sees it as loaded, so it may not follow a stage of
        // that model in the file (it would read as if it used the trained
        // weights).
        for m in args.models() {
            let trained = self
                .out
                .steps
                .iter()
                .any(|s| matches!(s, crate::check::types::Step::Train(t) if t.model == m));
            if trained {
                let span = bound.get("model").map(|a| a.1).unwrap_or(at);
                self.err(
                    Diag::error(
                        "model-state",
                        span,
                        format!("`{}` encodes with `{m}` as loaded, but comes after a `train {m}` block", comp.name),
                    )
                    .help(format!("data sources are built before any training: move this one above `train {m}`, or mine with a model loaded from the trained model's saved directory")),
                );
                return None;
            }
        }
        let mut inputs = Vec::new();
        let mut sources = Vec::new();
        for spec in comp.args {
            if !matches!(spec.ty, ArgType::Data | ArgType::DataColumns(_)) {
                continue;
            }
            let Some(name) = args.values().get(spec.name).and_then(|v| v.as_str()) else {
                continue;
            };
            // A source that failed its own checks was reported there.
            let src = self.out.data_source(name)?;
            inputs.push(name.to_string());
            sources.push((spec.name, src));
        }
        let result = columns(&TransformInput {
            args: &args,
            sources,
        });
        match result {
            Ok(cols) => Some((
                DataKind::Derived {
                    transform: comp.name.to_string(),
                    args,
                    inputs,
                },
                cols,
            )),
            Err(p) => {
                let span = bound.get(p.arg).map(|a| a.1).unwrap_or(at);
                self.err(Diag::error(p.code, span, p.message).help(p.help));
                None
            }
        }
    }
}
