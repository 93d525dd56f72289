//! `save` and `expect` statements: the model and path of a save (with
//! `best by`, a metric of an evaluator the model's training evaluates),
//! and an expectation's metric and threshold.

use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::Diag;
use crate::registry::{self, ArgType};
use crate::syntax::ast;

impl Checker<'_> {
    /// `EVALUATOR.METRIC`: the evaluator exists and produces the metric.
    fn check_metric(&mut self, m: &ast::MetricRef) -> Option<(MetricRef, Evaluator)> {
        let ev = self.resolve(&m.evaluator, BindKind::Evaluator)?;
        let ev = self.out.evaluator(&ev)?.clone();
        if !ev.metrics.contains(&m.metric.name) {
            let help =
                match registry::did_you_mean(&m.metric.name, ev.metrics.iter().map(String::as_str))
                {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("{} produces: {}", ev.kind, ev.metrics.join(", ")),
                };
            self.err(
                Diag::error(
                    "unknown-metric",
                    m.metric.span,
                    format!(
                        "{} evaluator `{}` has no metric `{}`",
                        ev.kind, ev.name, m.metric.name
                    ),
                )
                .help(help),
            );
            return None;
        }
        Some((
            MetricRef {
                evaluator: ev.name.clone(),
                metric: m.metric.name.clone(),
            },
            ev,
        ))
    }

    pub(crate) fn check_save(
        &mut self,
        model: &ast::Ident,
        path: &ast::Value,
        best: Option<&ast::MetricRef>,
    ) -> Option<Save> {
        let model_name = self.resolve(model, BindKind::Model);
        let path_span = path.span;
        let path = self.convert(path, ArgType::Str, "the path of `save`");
        let best_by = match best {
            Some(b) => {
                let (mr, ev) = self.check_metric(b)?;
                let model_name = model_name.clone()?;
                if ev.model != model_name {
                    self.err(
                        Diag::error(
                            "model-mismatch",
                            b.evaluator.span,
                            format!(
                                "evaluator `{}` evaluates `{}`, not the saved model `{model_name}`",
                                ev.name, ev.model
                            ),
                        )
                        .help("choose the best checkpoint by an evaluator of the saved model"),
                    );
                    return None;
                }
                let evaluated = self
                    .evaluated
                    .get(&model_name)
                    .is_some_and(|v| v.contains(&ev.name));
                if !evaluated {
                    self.err(
                        Diag::error(
                            "not-evaluated",
                            b.span,
                            format!("`best by {}.{}` needs `{}` to be evaluated while `{model_name}` trains", mr.evaluator, mr.metric, ev.name),
                        )
                        .help(format!("add `evaluate: {}` to a train block of `{model_name}` above", ev.name)),
                    );
                    return None;
                }
                Some(mr)
            }
            None => None,
        };
        let model_name = model_name?;
        let path = path?.as_str()?.to_string();
        if path.is_empty() {
            self.err(
                Diag::error("bad-path", path_span, "empty save path").help("give a directory"),
            );
            return None;
        }
        if Self::tilde_path(&path) {
            self.err(
                Diag::error(
                    "bad-path",
                    path_span,
                    format!("`~` in `{path}` is not your home directory: nothing expands it, so this names a directory called `~`"),
                )
                .help("write `${HOME}` instead of `~`"),
            );
            return None;
        }
        let mut path = self.resolve_path(&path);
        if let Some(suffix) = &self.opts.save_suffix {
            // A sweep point saves beside the others: `out` -> `out@lr=2e-5`.
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            path.set_file_name(name);
        }
        Some(Save {
            model: model_name,
            path,
            span: path_span,
            best_by,
        })
    }

    pub(crate) fn check_expect(
        &mut self,
        metric: &ast::MetricRef,
        op: ast::CmpOp,
        value: &ast::Value,
    ) -> Option<Expect> {
        let m = self.check_metric(metric);
        let v = self.convert(value, ArgType::Float, "the threshold of `expect`");
        let (m, _) = m?;
        let v = v?.as_f64()?;
        if !v.is_finite() {
            self.err(
                Diag::error("bad-number", value.span, "this number is out of range")
                    .help("write a finite number"),
            );
            return None;
        }
        if v.abs() > 1.0 && !m.metric.contains("mse") {
            self.err(
                Diag::warning(
                    "metric-scale",
                    value.span,
                    format!(
                        "`{}` lies between -1 and 1; {v} looks like a percentage",
                        m.metric
                    ),
                )
                .help(format!("write {}", v / 100.0)),
            );
        }
        Some(Expect {
            metric: m,
            op: op.symbol(),
            value: v,
        })
    }
}
