//! Train stages, saves and expectations.

use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, ArgType, Family};
use crate::syntax::ast::{self, StageItem, ValueKind};

impl Checker<'_> {
    pub(crate) fn check_stage(
        &mut self,
        span: Span,
        model: &ast::Ident,
        name: Option<&ast::Ident>,
        items: &[StageItem],
    ) -> Option<Stage> {
        let model_name = self.resolve(model, BindKind::Model);
        let stage_name = match name {
            Some(n) => {
                if self.out.stages().any(|s| s.name == n.name) {
                    self.err(
                        Diag::error(
                            "duplicate-binding",
                            n.span,
                            format!("stage `{}` is already defined", n.name),
                        )
                        .help("give each stage a distinct name"),
                    );
                    return None;
                }
                n.name.clone()
            }
            None => format!("stage{}", self.stage_count),
        };
        let mut settings: Vec<ast::Arg> = Vec::new();
        let mut evaluate: Option<(Vec<String>, Option<u64>)> = None;
        let mut checkpoint: Option<(u64, Option<usize>)> = None;
        let mut ok = true;
        let mut eval_span = span;
        for it in items {
            match it {
                StageItem::Setting { key, value } => settings.push(ast::Arg {
                    name: Some(key.clone()),
                    value: value.clone(),
                    span: Span::new(key.span.start, value.span.end),
                }),
                StageItem::Evaluate {
                    what,
                    every,
                    span: isp,
                } => {
                    if evaluate.is_some() {
                        self.err(
                            Diag::error("duplicate-argument", *isp, "`evaluate` is given twice")
                                .help(
                                "list all evaluators once: `evaluate: [dev, test] every 100 steps`",
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    eval_span = *isp;
                    let items: Vec<ast::Value> = match &what.kind {
                        ValueKind::List(l) => l.clone(),
                        _ => vec![what.clone()],
                    };
                    let mut names = Vec::new();
                    for v in &items {
                        match &v.kind {
                            ValueKind::Ident(id) => match self.resolve(id, BindKind::Evaluator) {
                                Some(n) => names.push(n),
                                None => ok = false,
                            },
                            _ => {
                                self.err(
                                    Diag::error(
                                        "type-mismatch",
                                        v.span,
                                        "`evaluate` expects evaluator names",
                                    )
                                    .help("e.g. `evaluate: dev every 200 steps`"),
                                );
                                ok = false;
                            }
                        }
                    }
                    let every = match every {
                        Some(e) => self.positive_steps(e, "`every` of `evaluate`"),
                        None => Some(0),
                    };
                    match every {
                        Some(e) => evaluate = Some((names, (e > 0).then_some(e))),
                        None => ok = false,
                    }
                }
                StageItem::Checkpoint {
                    every,
                    keep,
                    span: isp,
                } => {
                    if checkpoint.is_some() {
                        self.err(
                            Diag::error("duplicate-argument", *isp, "`checkpoint` is given twice")
                                .help("give `checkpoint: every N steps, keep K` once"),
                        );
                        ok = false;
                        continue;
                    }
                    let e = self.positive_steps(every, "`every` of `checkpoint`");
                    let k = match keep {
                        Some(k) => {
                            match self.convert(k, ArgType::Count, "`keep` of `checkpoint`") {
                                Some(ArgValue::Int(n)) if n >= 1 => Some(Some(n as usize)),
                                Some(_) => {
                                    self.err(
                                        Diag::error(
                                            "out-of-range",
                                            k.span,
                                            "`keep` must be at least 1",
                                        )
                                        .help("the number of checkpoints kept on disk"),
                                    );
                                    None
                                }
                                None => None,
                            }
                        }
                        None => Some(None),
                    };
                    match (e, k) {
                        (Some(e), Some(k)) => checkpoint = Some((e, k)),
                        _ => ok = false,
                    }
                }
            }
        }
        let args = self.bind(registry::stage(), &settings, span);
        let model_name = model_name?;
        let args = args?;
        if !ok {
            return None;
        }
        let get = |k: &str| args.get(k).map(|(v, s)| (v.clone(), *s));
        let (objs, objs_span) = get("objectives")?;
        let objectives: Vec<String> = match objs {
            ArgValue::List(l) => l
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if objectives.is_empty() {
            self.err(
                Diag::error(
                    "no-objectives",
                    objs_span,
                    "a train stage needs at least one objective",
                )
                .help("e.g. `objectives: [sim]`"),
            );
            return None;
        }
        let mut teachers = Vec::new();
        for (i, o) in objectives.iter().enumerate() {
            if objectives[..i].contains(o) {
                self.err(
                    Diag::error(
                        "duplicate-argument",
                        objs_span,
                        format!("objective `{o}` is listed twice"),
                    )
                    .help("list each objective once"),
                );
                ok = false;
            }
            let Some(obj) = self.out.objective(o).cloned() else {
                ok = false;
                continue;
            };
            if obj.model != model_name {
                let m = obj.model.clone();
                self.err(
                    Diag::error(
                        "model-mismatch",
                        objs_span,
                        format!(
                            "objective `{o}` trains `{m}`, but this stage trains `{model_name}`"
                        ),
                    )
                    .help(format!(
                        "train `{m}` in its own stage, or bind `{o}` to `{model_name}`"
                    )),
                );
                ok = false;
            }
            for arg in crate::registry::FROZEN_MODEL_ARGS {
                if let Some(ArgValue::Name(t)) = obj.base_loss().1.values().get(*arg) {
                    if !teachers.contains(t) {
                        teachers.push(t.clone());
                    }
                }
            }
        }
        let (evaluate, evaluate_every) = evaluate.unwrap_or_default();
        for e in &evaluate {
            if let Some(ev) = self.out.evaluator(e) {
                if ev.model != model_name {
                    let d = Diag::warning(
                        "model-mismatch",
                        eval_span,
                        format!(
                            "evaluator `{e}` evaluates `{}`, not `{model_name}` trained here",
                            ev.model
                        ),
                    )
                    .help("evaluate the model being trained");
                    self.err(d);
                }
            }
        }
        let max_steps = get("max_steps")
            .and_then(|v| v.0.as_i64())
            .map(|v| v as u64);
        if let (Some(_), Some((_, es))) =
            (max_steps, args.get("epochs").filter(|(_, s)| *s != span))
        {
            self.err(
                Diag::warning(
                    "ignored-setting",
                    *es,
                    "`epochs` is ignored when `max_steps` is set",
                )
                .help("remove one of them"),
            );
        }
        let epochs = get("epochs").and_then(|v| v.0.as_i64()).unwrap_or(1);
        let call = |v: Option<(ArgValue, Span)>, family: Family| match v {
            Some((ArgValue::Call(c), _)) => Some(c),
            _ => match registry::stage().arg(if family == Family::Optimizer {
                "optimizer"
            } else {
                "scheduler"
            }) {
                Some(spec) => match spec.default_value() {
                    Some(ArgValue::Call(c)) => Some(c),
                    _ => None,
                },
                None => None,
            },
        };
        let scheduler = call(get("scheduler"), Family::Scheduler)?;
        let warmup = match scheduler.args.values().get("warmup") {
            Some(ArgValue::Warmup(w)) => *w,
            _ => Warmup::Steps(0),
        };
        let optimizer = call(get("optimizer"), Family::Optimizer)?;
        let accum = get("gradient_accumulation")
            .and_then(|v| v.0.as_i64())
            .unwrap_or(1);
        if !ok {
            return None;
        }
        self.evaluated
            .entry(model_name.clone())
            .or_default()
            .extend(evaluate.iter().cloned());
        Some(Stage {
            name: stage_name,
            span,
            model: model_name,
            objectives,
            epochs: epochs.max(1) as usize,
            max_steps,
            optimizer,
            scheduler,
            warmup,
            max_grad_norm: get("max_grad_norm")
                .and_then(|v| v.0.as_f64())
                .unwrap_or(1.0),
            gradient_accumulation: accum.max(1) as usize,
            seed: get("seed").and_then(|v| v.0.as_i64()).unwrap_or(42) as u64,
            mixing: get("mixing")
                .and_then(|v| v.0.as_str().and_then(Mixing::from_name))
                .unwrap_or(Mixing::RoundRobin),
            precision: get("precision")
                .and_then(|v| v.0.as_str().and_then(Precision::from_name))
                .unwrap_or(Precision::Fp32),
            evaluate,
            evaluate_every,
            evaluate_at_start: get("evaluate_at_start")
                .and_then(|v| v.0.as_bool())
                .unwrap_or(true),
            checkpoint_every: checkpoint.map(|c| c.0),
            checkpoint_keep: checkpoint.and_then(|c| c.1),
            teachers,
        })
    }

    fn positive_steps(&mut self, v: &ast::Value, ctx: &str) -> Option<u64> {
        match self.convert(v, ArgType::Count, ctx)? {
            ArgValue::Int(n) if n >= 1 => Some(n as u64),
            _ => {
                self.err(
                    Diag::error(
                        "out-of-range",
                        v.span,
                        format!("{ctx} must be at least 1 step"),
                    )
                    .help("e.g. `every 100 steps`"),
                );
                None
            }
        }
    }

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
