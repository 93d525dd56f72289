//! Losses that wrap other losses (`MatryoshkaLoss(MultipleNegativesRankingLoss(m),
//! dims: [384, 256])`), and truncation dimensions checked against the
//! model's width.
//!
//! A wrapper names the loss it modifies in its `loss` argument (type
//! `LossCall`). The wrapped loss is the one that sees the data: its columns,
//! its model and its teacher are checked as if it stood alone, and the
//! wrapper's own rules are checked against it.

use super::args::BoundArgs;
use super::Checker;
use crate::check::types::*;
use crate::diag::Diag;
use crate::registry::{self, ArgType, Component, Family, Rule};
use crate::syntax::ast;

/// The wrappers of an objective's loss, outermost first, with their
/// arguments.
pub(crate) type Wrappers = Vec<(&'static Component, BoundArgs)>;

/// Whether `comp` wraps another loss.
pub(crate) fn is_wrapper(comp: &Component) -> bool {
    comp.args.iter().any(|a| a.ty == ArgType::LossCall)
}

/// Whether a loss with these arguments runs under GradCache: it takes a
/// `mini_batch_size`, unless `use_mini_batched_version: false` turns that
/// off (MegaBatchMarginLoss).
fn is_cached(comp: &Component, args: &BoundArgs) -> bool {
    let has = |n: &str| comp.args.iter().any(|a| a.name == n);
    has("mini_batch_size")
        && !(has("use_mini_batched_version")
            && args
                .get("use_mini_batched_version")
                .is_some_and(|(v, _)| matches!(v, ArgValue::Bool(false))))
}

impl Checker<'_> {
    /// The loss under `comp`'s wrappers, with its arguments, and the
    /// wrappers. `args` are `comp`'s bound arguments; a wrapped loss was
    /// bound (and reported on) when they were, so binding it again here
    /// only recovers the places of its arguments.
    pub(crate) fn unwrap_loss(
        &mut self,
        comp: &'static Component,
        call: &ast::Call,
        args: &BoundArgs,
    ) -> Option<(&'static Component, BoundArgs, Wrappers)> {
        let (mut comp, mut call, mut args) = (comp, call.clone(), args.clone());
        let mut wrappers = Wrappers::new();
        while is_wrapper(comp) {
            let Some(inner) = self.wrapped_call(&call) else {
                // Binding `args` succeeded, so the wrapped loss is there.
                self.err(
                    Diag::error(
                        "internal",
                        call.span,
                        format!("`{}`: the wrapped loss was not found again", comp.name),
                    )
                    .help("an stpipe bug: please report it with this pipeline"),
                );
                return None;
            };
            let inner_comp = registry::lookup(Family::Loss, &inner.name.name)?;
            let before = self.diags.len();
            let inner_args = self.bind(inner_comp, &inner.args, inner.span);
            self.diags.truncate(before);
            wrappers.push((comp, args));
            (comp, call, args) = (inner_comp, inner, inner_args?);
        }
        Some((comp, args, wrappers))
    }

    /// The wrapped loss's call in a wrapper's arguments: the one argument
    /// (named `loss`, or positional) that is, or is a `let` name for, a
    /// call of a registered loss.
    fn wrapped_call(&mut self, call: &ast::Call) -> Option<ast::Call> {
        for a in &call.args {
            if a.name.as_ref().is_some_and(|n| n.name != WRAPPED_LOSS) {
                continue;
            }
            if let ast::ValueKind::Call(c) = self.deref_let(&a.value).kind {
                if registry::lookup(Family::Loss, &c.name.name).is_some() {
                    return Some(c);
                }
            }
        }
        None
    }

    /// A wrapper's rules that involve the loss it wraps and the model.
    pub(crate) fn check_wrapper(
        &mut self,
        wrapper: &Component,
        args: &BoundArgs,
        base: &Component,
        base_args: &BoundArgs,
        model: &str,
    ) -> bool {
        let mut ok = self.check_widths(wrapper, args, model);
        let truncates = wrapper
            .rules
            .iter()
            .any(|r| matches!(r, Rule::AtMostWidth(_)));
        let uncached = wrapper.rules.iter().any(|r| matches!(r, Rule::Uncached));
        let classifier = base.columns.is_some_and(|c| c.label_classes.is_some());
        let runs_models = base
            .rules
            .iter()
            .any(|r| matches!(r, Rule::CopiesModel | Rule::TiedDecoder(_)));
        let problem = if runs_models {
            Some((
                format!(
                    "{} embeds the texts itself (with a copy of the model or a decoder), so {} cannot reach its embeddings",
                    base.name, wrapper.name
                ),
                format!("train {} in its own objective", base.name),
            ))
        } else if uncached && is_cached(base, base_args) {
            let off = base
                .args
                .iter()
                .any(|a| a.name == "use_mini_batched_version");
            Some((
                format!(
                    "{} needs every layer's embeddings of the whole batch at once, and {} runs under GradCache, which embeds the batch a mini-batch at a time",
                    wrapper.name, base.name
                ),
                match off {
                    true => format!("wrap the uncached loss instead (`{}(..., use_mini_batched_version: false)`)", base.name),
                    false => "wrap the uncached loss instead".to_string(),
                },
            ))
        } else if truncates && classifier {
            Some((
                format!(
                    "{} truncates the embeddings, and {}'s classifier is sized for their full width",
                    wrapper.name, base.name
                ),
                format!(
                    "wrap a loss without its own weights, such as MultipleNegativesRankingLoss or CoSENTLoss, or train {} in its own objective",
                    base.name
                ),
            ))
        } else {
            None
        };
        if let Some((message, help)) = problem {
            let span = args.get(WRAPPED_LOSS).map(|(_, s)| *s).unwrap_or_default();
            self.err(Diag::error("cannot-wrap", span, message).help(help));
            ok = false;
        }
        ok
    }

    /// Every `AtMostLayers` argument of `comp` against `model`'s number of
    /// layers (when its directory is local).
    fn check_layers(&mut self, comp: &Component, args: &BoundArgs, model: &str) -> bool {
        let Some(layers) = self.out.model(model).and_then(|m| m.layers) else {
            return true;
        };
        let mut ok = true;
        for rule in comp.rules {
            let Rule::AtMostLayers(name) = *rule else {
                continue;
            };
            if let Some((v, span)) = args.get(name) {
                if v.as_i64().is_some_and(|k| k > layers as i64) {
                    self.err(
                        Diag::error(
                            "too-many-layers",
                            *span,
                            format!(
                                "`{name}` of `{}` is {}, but `{model}` has {layers} layers",
                                comp.name,
                                v.as_i64().unwrap_or_default()
                            ),
                        )
                        .help(format!("give at most {layers}")),
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    /// Every `AtMostWidth` argument of `comp` against `model`'s width (when
    /// it is known statically).
    pub(crate) fn check_widths(&mut self, comp: &Component, args: &BoundArgs, model: &str) -> bool {
        let Some(width) = self.out.model(model).and_then(|m| m.dim) else {
            return true;
        };
        let mut ok = self.check_layers(comp, args, model);
        for rule in comp.rules {
            let Rule::AtMostWidth(name) = *rule else {
                continue;
            };
            let Some((value, span)) = args.get(name) else {
                continue;
            };
            let values: Vec<i64> = match value {
                ArgValue::List(items) => items.iter().filter_map(ArgValue::as_i64).collect(),
                v => v.as_i64().into_iter().collect(),
            };
            if let Some(d) = values.into_iter().find(|&d| d > width as i64) {
                self.err(
                    Diag::error(
                        "too-wide",
                        *span,
                        format!(
                            "`{name}` of `{}` is {d}, but `{model}` gives {width}-dimensional embeddings",
                            comp.name
                        ),
                    )
                    .help(format!("give dimensions of at most {width}")),
                );
                ok = false;
            }
        }
        ok
    }
}
