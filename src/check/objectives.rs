//! Objectives and evaluators: their components, models (student, teacher,
//! guide), sampler and prompts. The data columns their components need are
//! checked in [`super::data_needs`].

use super::args::{to_args, BoundArgs};
use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, Family};
use crate::syntax::ast;

impl Checker<'_> {
    pub(crate) fn check_objective(
        &mut self,
        name: &ast::Ident,
        loss: &ast::Call,
        data: &ast::Ident,
        options: &[ast::Arg],
        options_span: Option<Span>,
    ) -> Option<Objective> {
        let comp = self.lookup_component(Family::Loss, &loss.name);
        let data_name = self.resolve(data, BindKind::Data);
        let opts = self.bind(
            registry::objective_options(),
            options,
            options_span.unwrap_or(data.span),
        );
        let comp = comp?;
        let args = self.bind(comp, &loss.args, loss.span)?;
        let data_name = data_name?;
        let opts = opts?;
        // The loss that sees the data, under any wrappers.
        let (base, base_args, wrappers) = self.unwrap_loss(comp, loss, &args)?;
        let model = base_args.get("model")?.0.as_str()?.to_string();
        let ds = self.out.data_source(&data_name)?.clone();
        let mut ok = self.check_columns(base, &ds, data.span, &base_args);
        ok &= self.check_decoder(base, &base_args, &model);
        if wrappers.is_empty() {
            ok &= self.check_one_column_args(base, &base_args, loss.span, &ds);
        }
        for (wrapper, wargs) in &wrappers {
            ok &= self.check_wrapper(wrapper, wargs, base, &base_args, &model);
        }
        // Distillation: the teacher is another model, of the student's
        // width when the student learns its embeddings (not its scores).
        if let Some((ArgValue::Name(t), tspan)) = base_args.get("teacher") {
            let same_width = base.columns.is_none_or(|c| c.label_from.is_none());
            ok &= self.check_teacher(&model, t, *tspan, same_width);
        }
        // GISTEmbedLoss's guide: another, frozen model, of any width.
        ok &= self.check_guide(&model, &base_args);
        let sampler = self.check_sampler(&opts, &ds, data.span);
        ok &= sampler.is_some();
        let sampler = sampler.unwrap_or(Sampler::Default);
        let batch_size = opts
            .get("batch_size")
            .and_then(|v| v.0.as_i64())
            .unwrap_or(32);
        let shuffle = opts
            .get("shuffle")
            .and_then(|v| v.0.as_bool())
            .unwrap_or(true);
        let prompts = match opts.get("prompts") {
            Some((ArgValue::StrMap(m), sp)) => {
                ok &= self.check_prompt_columns(m, *sp, &ds);
                m.clone()
            }
            _ => Vec::new(),
        };
        ok.then(|| Objective {
            name: name.name.clone(),
            span: name.span,
            loss: comp.name.to_string(),
            model,
            data: data_name,
            args: to_args(comp, &args),
            batch_size: batch_size.max(1) as usize,
            shuffle,
            sampler,
            prompts,
        })
    }

    /// A loss's `guide` (GISTEmbedLoss) must be another model than the
    /// one trained.
    fn check_guide(&mut self, model: &str, args: &BoundArgs) -> bool {
        let Some((ArgValue::Name(g), gspan)) = args.get("guide") else {
            return true;
        };
        if g != model {
            return true;
        }
        self.err(
            Diag::error(
                "guide-is-student",
                *gspan,
                "the guide is the model being trained",
            )
            .help("guide with a different, frozen model (e.g. a larger pretrained one)"),
        );
        false
    }

    /// The objective's sampler; `None` (reported) when it cannot batch
    /// `ds`: grouping by label needs integer class labels.
    fn check_sampler(&mut self, opts: &BoundArgs, ds: &DataSource, at: Span) -> Option<Sampler> {
        let sampler = opts
            .get("sampler")
            .and_then(|v| v.0.as_str())
            .and_then(Sampler::from_name)
            .unwrap_or(Sampler::Default);
        if sampler != Sampler::GroupByLabel {
            return Some(sampler);
        }
        let sp = opts.get("sampler").map(|v| v.1).unwrap_or(at);
        let name = &ds.name;
        let problem = match ds.label_column() {
            None => format!("the group_by_label sampler needs a label column, and `{name}` has none"),
            Some(l) if matches!(l.ty, Some(ColType::Float | ColType::FloatList)) => format!(
                "the group_by_label sampler groups integer class labels, and the label of `{name}` holds scores"
            ),
            Some(_) => return Some(sampler),
        };
        let help = if ds.label_column().is_some() {
            "use `sampler: no_duplicates` or `default`, or map the labels to classes with map(...)"
        } else {
            "use `sampler: no_duplicates` or `default`"
        };
        self.err(Diag::error("sampler-needs-label", sp, problem).help(help));
        None
    }

    /// Every key of a `prompts` map must name a text column of `ds`.
    pub(crate) fn check_prompt_columns(
        &mut self,
        prompts: &[(String, String)],
        span: Span,
        ds: &DataSource,
    ) -> bool {
        let texts: Vec<String> = ds.text_columns().iter().map(|c| c.name.clone()).collect();
        let mut ok = true;
        for (k, _) in prompts {
            if !texts.contains(k) {
                self.err(
                    Diag::error(
                        "unknown-column",
                        span,
                        format!(
                            "prompt for `{k}`, which is not a text column of `{}`",
                            ds.name
                        ),
                    )
                    .help(format!("its text columns are: {}", texts.join(", "))),
                );
                ok = false;
            }
        }
        ok
    }

    /// Whether objective `name` trains a classifier.
    pub(crate) fn is_classifier(&mut self, name: &str, span: Span, ctx: &str) -> bool {
        let Some(o) = self.out.objective(name) else {
            return false;
        };
        let classifier = registry::lookup(Family::Loss, o.base_loss().0)
            .and_then(|c| c.columns)
            .is_some_and(|c| c.label_classes.is_some());
        if !classifier {
            let loss = o.loss.clone();
            self.err(
                Diag::error(
                    "needs-classifier",
                    span,
                    format!("{ctx} needs an objective with a classifier (SoftmaxLoss), but `{name}` uses {loss}"),
                )
                .help("name the SoftmaxLoss objective whose classifier should be evaluated"),
            );
        }
        classifier
    }

    fn check_teacher(
        &mut self,
        student: &str,
        teacher: &str,
        span: Span,
        same_width: bool,
    ) -> bool {
        if student == teacher {
            self.err(
                Diag::error(
                    "teacher-is-student",
                    span,
                    "the teacher is the model being trained",
                )
                .help("distil from a different, frozen model"),
            );
            return false;
        }
        let sd = self.out.model(student).and_then(|m| m.dim);
        let td = self.out.model(teacher).and_then(|m| m.dim);
        if let (Some(s), Some(t), true) = (sd, td, same_width) {
            if s != t {
                self.err(
                    Diag::error(
                        "dimension-mismatch",
                        span,
                        format!("teacher `{teacher}` gives {t}-dimensional embeddings but student `{student}` gives {s}"),
                    )
                    .help(format!("make the widths match, e.g. end the student with `-> Dense({t}, identity)`")),
                );
                return false;
            }
        }
        true
    }

    pub(crate) fn check_evaluator(
        &mut self,
        name: &ast::Ident,
        call: &ast::Call,
    ) -> Option<Evaluator> {
        let comp = self.lookup_component(Family::Evaluator, &call.name)?;
        let mut args = self.bind(comp, &call.args, call.span)?;
        let model = args.get("model")?.0.as_str()?.to_string();
        if comp
            .args
            .iter()
            .any(|a| a.ty == registry::ArgType::Evaluators)
        {
            return self.check_sequence(name, comp, &mut args, model);
        }
        let (data, data_span) = args
            .get("data")
            .map(|(v, s)| (v.as_str().map(str::to_string), *s))?;
        let data = data?;
        let ds = self.out.data_source(&data)?.clone();
        let mut ok = self.check_columns(comp, &ds, data_span, &args);
        ok &= self.check_widths(comp, &args, &model);
        if let Some((ArgValue::Name(t), tspan)) = args.get("teacher") {
            ok &= self.check_teacher(&model, t, *tspan, true);
        }
        if let Some((ArgValue::StrMap(m), sp)) = args.get("prompts") {
            ok &= self.check_prompt_columns(m, *sp, &ds);
        }
        // A classifier evaluated must belong to the model evaluated.
        for spec in comp.args {
            if spec.ty != registry::ArgType::ClassifierObjective {
                continue;
            }
            let Some((ArgValue::Name(o), ospan)) = args.get(spec.name) else {
                continue;
            };
            let Some(obj) = self.out.objective(o).cloned() else {
                ok = false;
                continue;
            };
            if obj.model != model {
                self.err(
                    Diag::error(
                        "model-mismatch",
                        *ospan,
                        format!(
                            "objective `{o}` trains `{}`, but this evaluator evaluates `{model}`",
                            obj.model
                        ),
                    )
                    .help("use an objective of the same model"),
                );
                ok = false;
            }
        }
        ok.then(|| Evaluator {
            name: name.name.clone(),
            span: name.span,
            kind: comp.name.to_string(),
            model,
            data,
            args: to_args(comp, &args),
            metrics: comp.metrics.iter().map(|m| m.to_string()).collect(),
        })
    }
}
