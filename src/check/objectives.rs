//! Objectives and evaluators, and the data columns their components need.

use super::args::{to_args, BoundArgs};
use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, Component, Family};
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
        if let Some((ArgValue::Name(g), gspan)) = base_args.get("guide") {
            if *g == model {
                self.err(
                    Diag::error(
                        "guide-is-student",
                        *gspan,
                        "the guide is the model being trained",
                    )
                    .help("guide with a different, frozen model (e.g. a larger pretrained one)"),
                );
                ok = false;
            }
        }
        let sampler = opts
            .get("sampler")
            .and_then(|v| v.0.as_str())
            .and_then(Sampler::from_name)
            .unwrap_or(Sampler::Default);
        if sampler == Sampler::GroupByLabel && ds.label_column().is_none() {
            let sp = opts.get("sampler").map(|v| v.1).unwrap_or(data.span);
            self.err(
                Diag::error(
                    "sampler-needs-label",
                    sp,
                    format!("the group_by_label sampler needs a label column, and `{data_name}` has none"),
                )
                .help("use `sampler: no_duplicates` or `default`"),
            );
            ok = false;
        }
        let scored = ds
            .label_column()
            .is_some_and(|l| matches!(l.ty, Some(ColType::Float | ColType::FloatList)));
        if sampler == Sampler::GroupByLabel && scored {
            let sp = opts.get("sampler").map(|v| v.1).unwrap_or(data.span);
            self.err(
                Diag::error(
                    "sampler-needs-label",
                    sp,
                    format!("the group_by_label sampler groups integer class labels, and the label of `{data_name}` holds scores"),
                )
                .help("use `sampler: no_duplicates` or `default`, or map the labels to classes with map(...)"),
            );
            ok = false;
        }
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

    /// Whether data source `name` has the named columns `need`.
    pub(crate) fn has_columns(&mut self, name: &str, need: &[&str], span: Span, ctx: &str) -> bool {
        let Some(d) = self.out.data_source(name) else {
            return false;
        };
        let missing: Vec<&str> = need
            .iter()
            .copied()
            .filter(|c| !d.columns.iter().any(|x| x.name == *c))
            .collect();
        if missing.is_empty() {
            return true;
        }
        let have: Vec<&str> = d.columns.iter().map(|c| c.name.as_str()).collect();
        let d = Diag::error(
            "missing-column",
            span,
            format!(
                "{ctx} needs columns {} in `{name}`; it has {}",
                need.join(", "),
                have.join(", ")
            ),
        )
        .help(format!(
            "name the columns `{}` in `{name}`'s column block",
            need.join("`, `")
        ));
        self.err(d);
        false
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

    /// Labels of `ds` must be classes `0..n`, `n` the value of the
    /// argument the loss names (`num_labels`).
    fn check_label_classes(&mut self, arg: &str, args: &BoundArgs, ds: &DataSource) -> bool {
        let Some((ArgValue::Int(n), span)) = args.get(arg) else {
            return true;
        };
        let (n, span) = (*n, *span);
        if let Some(l) = ds.label_column() {
            let bad = l
                .samples
                .iter()
                .find(|v| v.trim().parse::<i64>().is_ok_and(|x| x < 0 || x >= n));
            if let Some(v) = bad {
                self.err(
                    Diag::error(
                        "label-out-of-range",
                        span,
                        format!(
                            "{arg} is {n}, but `{}` has label {} in its first rows",
                            ds.name,
                            v.trim()
                        ),
                    )
                    .help(format!("labels must be 0 to {}", n - 1)),
                );
                return false;
            }
        }
        if let Some(ColumnExpr::Map { map, .. }) = ds.label_column().and_then(|c| c.expr.as_ref()) {
            if let Some((k, v)) = map.iter().find(|(_, v)| *v < 0 || *v >= n) {
                self.err(
                    Diag::error(
                        "label-out-of-range",
                        span,
                        format!("{arg} is {n}, but `{}` maps {k:?} to label {v}", ds.name),
                    )
                    .help(format!("labels must be 0 to {}", n - 1)),
                );
                return false;
            }
        }
        true
    }

    /// Whether `ds` has the columns `comp` needs; reports what is wrong.
    pub(crate) fn check_columns(
        &mut self,
        comp: &Component,
        ds: &DataSource,
        at: Span,
        args: &BoundArgs,
    ) -> bool {
        let ok = self.check_columns_inner(comp, ds, at, args);
        if ok {
            self.require_labels(comp, &ds.name, args);
        }
        ok
    }

    /// Record what `comp` requires of every label of source `name`.
    fn require_labels(&mut self, comp: &Component, name: &str, args: &BoundArgs) {
        let Some(spec) = comp.columns else {
            return;
        };
        let classes = spec
            .label_classes
            .and_then(|a| args.get(a))
            .and_then(|(v, _)| v.as_i64());
        if spec.label_range.is_none() && classes.is_none() {
            return;
        }
        let check = LabelCheck {
            by: comp.name.to_string(),
            range: spec.label_range,
            classes,
        };
        if let Some(d) = self.out.data.iter_mut().find(|d| d.name == name) {
            if !d.label_checks.contains(&check) {
                d.label_checks.push(check);
            }
        }
    }

    fn check_columns_inner(
        &mut self,
        comp: &Component,
        ds: &DataSource,
        at: Span,
        args: &BoundArgs,
    ) -> bool {
        let Some(mut spec) = comp.columns else {
            return true;
        };
        // A teacher model computes the label: the data holds none.
        if spec.label_from.is_some_and(|a| args.get(a).is_some()) {
            spec = registry::Columns {
                label: None,
                list_label: registry::ListLabel::No,
                label_range: None,
                ..spec
            };
        }
        if let Some(arg) = spec.label_classes {
            if !self.check_label_classes(arg, args, ds) {
                return false;
            }
        }
        let names: Vec<String> = ds.columns.iter().map(|c| c.name.clone()).collect();
        let have = names.join(", ");
        let need = spec.describe();
        let mut ok = true;
        let label = ds.label_column();
        match (spec.label, label) {
            (Some(t), None) => {
                self.err(
                    Diag::error(
                        "missing-label",
                        at,
                        format!("{} needs a {} column named `label` or `score`; `{}` has columns {have}", comp.name, t.noun(), ds.name),
                    )
                    .help(format!("{} needs {need}", comp.name)),
                );
                ok = false;
            }
            (None, Some(l)) => {
                self.err(
                    Diag::error(
                        "unexpected-label",
                        at,
                        format!(
                            "{} takes no label column, but `{}` has `{}`",
                            comp.name, ds.name, l.name
                        ),
                    )
                    .help(format!("{} needs {need}", comp.name)),
                );
                ok = false;
            }
            (Some(want), Some(l))
                if want == ColType::FloatList || l.ty == Some(ColType::FloatList) =>
            {
                ok &= self.check_list_label(comp, &spec, ds, l, at);
            }
            (Some(want), Some(l)) => {
                let bad = match (want, l.ty) {
                    (ColType::Float, Some(ColType::Text)) => Some("text"),
                    (ColType::Int, Some(ColType::Text)) => Some("text"),
                    (ColType::Int, Some(ColType::Float)) => Some("non-integer numbers"),
                    _ => None,
                };
                if let Some(found) = bad {
                    let help = if found == "text" && want == ColType::Int {
                        "map text labels to integers: `label: map(col(...), {\"entailment\": 0, ...})`".to_string()
                    } else if want == ColType::Int {
                        "class labels must be integers 0, 1, 2, ...".to_string()
                    } else {
                        "choose the numeric score column, e.g. `score: col(4) / 5.0`".to_string()
                    };
                    self.err(
                        Diag::error(
                            "label-type",
                            at,
                            format!(
                                "{} needs {} in `{}`, but column `{}` of `{}` holds {found}",
                                comp.name,
                                if want == ColType::Int {
                                    "an integer label"
                                } else {
                                    "a float score"
                                },
                                l.name,
                                l.name,
                                ds.name
                            ),
                        )
                        .help(help),
                    );
                    ok = false;
                }
            }
            (None, None) => {}
        }
        if let (Some((lo, hi)), Some(l)) = (spec.label_range, label) {
            let bad = l.samples.iter().find(|v| {
                v.trim()
                    .parse::<f64>()
                    .is_ok_and(|x| !(lo..=hi).contains(&x))
            });
            if let Some(v) = bad {
                let help = if spec.label == Some(ColType::Float) {
                    format!("scale the scores into [{lo}, {hi}], e.g. `score: col(4) / 5.0` for 0..5 scores")
                } else {
                    format!("labels must be {lo} or {hi}")
                };
                self.err(
                    Diag::error(
                        "label-range",
                        at,
                        format!(
                            "{} needs `{}` values in [{lo}, {hi}], but `{}` has {} in its first rows",
                            comp.name,
                            l.name,
                            ds.name,
                            v.trim()
                        ),
                    )
                    .help(help),
                );
                ok = false;
            }
        }
        let texts = ds.text_columns();
        let n = texts.len();
        let too_few = n < spec.min_texts;
        let too_many = spec.max_texts.is_some_and(|m| n > m);
        if too_few || too_many {
            let tn: Vec<&str> = texts.iter().map(|c| c.name.as_str()).collect();
            self.err(
                Diag::error(
                    "text-columns",
                    at,
                    format!(
                        "{} needs {need}; `{}` has {n} text column(s){}",
                        comp.name,
                        ds.name,
                        if tn.is_empty() { String::new() } else { format!(": {}", tn.join(", ")) }
                    ),
                )
                .help("choose the columns in the source's column block; the label column must be named `label` or `score`"),
            );
            ok = false;
        } else if let Some(c) = texts
            .iter()
            .find(|c| matches!(c.ty, Some(ColType::Int | ColType::Float)))
        {
            self.err(
                Diag::error(
                    "text-type",
                    at,
                    format!(
                        "{} reads `{}` of `{}` as text, but it holds numbers",
                        comp.name, c.name, ds.name
                    ),
                )
                .help("name a numeric column `label` or `score` to use it as the label"),
            );
            ok = false;
        }
        ok
    }

    /// A label that is a list of scores, or one that should be: its type
    /// and its length against the text columns.
    fn check_list_label(
        &mut self,
        comp: &Component,
        spec: &registry::Columns,
        ds: &DataSource,
        l: &Column,
        at: Span,
    ) -> bool {
        let texts = ds.text_columns().len();
        let lengths = spec.list_label.lengths(texts);
        let need = spec.describe();
        if l.ty != Some(ColType::FloatList) {
            self.err(
                Diag::error(
                    "label-type",
                    at,
                    format!(
                        "{} needs a list of scores in `{}` (one per candidate), but `{}` holds one value per row",
                        comp.name, l.name, ds.name
                    ),
                )
                .help(format!("read the teacher's scores as a list: `score: take(col(\"scores\"), {})`", lengths.first().copied().unwrap_or(2))),
            );
            return false;
        }
        if lengths.is_empty() {
            self.err(
                Diag::error(
                    "label-type",
                    at,
                    format!(
                        "{} needs one value in `{}`, but `{}` holds a list of scores per row",
                        comp.name, l.name, ds.name
                    ),
                )
                .help(format!(
                    "{} needs {need}; `item(col(...), 0)` reads one element",
                    comp.name
                )),
            );
            return false;
        }
        match l.list_len {
            Some(k) if !lengths.contains(&k) => {
                let allowed: Vec<String> = lengths.iter().map(usize::to_string).collect();
                self.err(
                    Diag::error(
                        "label-length",
                        at,
                        format!(
                            "{} reads {texts} text columns of `{}`, so the list in `{}` must hold {} score(s) per row, not {k}",
                            comp.name,
                            ds.name,
                            l.name,
                            allowed.join(" or ")
                        ),
                    )
                    .help(format!("{} needs {need}", comp.name)),
                );
                false
            }
            _ => true,
        }
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
