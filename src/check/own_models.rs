//! Losses that run models over the texts themselves (a copy of the model,
//! a decoder tied to it): the model's architecture and width the decoder
//! needs, and the arguments that act only on single sentences.

use super::args::BoundArgs;
use super::Checker;
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{Component, Rule};

impl Checker<'_> {
    /// A `TiedDecoder` loss against `model`'s architecture (when its
    /// directory is local).
    pub(crate) fn check_decoder(
        &mut self,
        comp: &Component,
        args: &BoundArgs,
        model: &str,
    ) -> bool {
        let Some(m) = self.out.model(model) else {
            return true;
        };
        let (Some(found), Some(hidden), dim) = (m.model_type.clone(), m.hidden_size, m.dim) else {
            return true;
        };
        let span = args.get("model").map(|(_, s)| *s).unwrap_or_default();
        for rule in comp.rules {
            let Rule::TiedDecoder(types) = *rule else {
                continue;
            };
            if let Some(d) = dim.filter(|&d| d != hidden) {
                self.err(
                    Diag::error(
                        "no-decoder",
                        span,
                        format!(
                            "{}'s decoder attends to the sentence embedding, which must be as wide as the Transformer ({hidden}); `{model}` gives {d}",
                            comp.name
                        ),
                    )
                    .help("train this objective on the model without the modules that change the width (a Dense), and add them after"),
                );
                return false;
            }
            if !types.contains(&found.as_str()) {
                self.err(
                    Diag::error(
                        "no-decoder",
                        span,
                        format!(
                            "{} decodes with the model's own weights, which needs a Transformer of type `{}`; `{model}` is `{found}`",
                            comp.name,
                            types.join("`, `")
                        ),
                    )
                    .help("sentence-transformers builds this decoder with transformers' AutoModelForCausalLM, which these architectures have; train another objective for this model"),
                );
                return false;
            }
        }
        true
    }

    /// Every `OneTextColumn` argument of `comp` written (not defaulted: a
    /// default carries the call's span) for data with more text columns.
    pub(crate) fn check_one_column_args(
        &mut self,
        comp: &Component,
        args: &BoundArgs,
        call_span: Span,
        ds: &DataSource,
    ) -> bool {
        let texts = ds.text_columns().len();
        let mut ok = true;
        for rule in comp.rules {
            let Rule::OneTextColumn(name) = *rule else {
                continue;
            };
            let Some((_, span)) = args.get(name) else {
                continue;
            };
            if *span != call_span && texts > 1 {
                self.err(
                    Diag::error(
                        "argument-conflict",
                        *span,
                        format!(
                            "`{name}` has an effect only on one text column, and `{}` has {texts}: {} takes its inputs from the columns as they are",
                            ds.name, comp.name
                        ),
                    )
                    .help(format!(
                        "leave `{name}` out, or train on a source with one text column"
                    )),
                );
                ok = false;
            }
        }
        ok
    }
}
