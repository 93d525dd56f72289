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
