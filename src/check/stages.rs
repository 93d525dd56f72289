//! Train stages: the block's items and settings, objectives, evaluators
//! and checkpoints. Saves and expectations are in [`super::save_expect`].

use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, ArgType};
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
        let stage_name = self.stage_name(name)?;
        let block = self.stage_items(span, items);
        let args = self.bind(registry::stage(), &block.settings, span);
        let model_name = model_name?;
        let args = args?;
        if !block.ok {
            return None;
        }
        let get = |k: &str| args.get(k).map(|(v, s)| (v.clone(), *s));
        let (objs, objs_span) = get("objectives")?;
        let (objectives, teachers, mut ok) =
            self.stage_objectives(&objs, objs_span, &model_name)?;
        let (evaluate, evaluate_every) = block.evaluate.unwrap_or_default();
        self.warn_foreign_evaluators(&evaluate, block.eval_span, &model_name);
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
        let scheduler = stage_call(get("scheduler"), "scheduler")?;
        let warmup = match scheduler.args.values().get("warmup") {
            Some(ArgValue::Warmup(w)) => *w,
            _ => Warmup::Steps(0),
        };
        let optimizer = stage_call(get("optimizer"), "optimizer")?;
        let accum = get("gradient_accumulation")
            .and_then(|v| v.0.as_i64())
            .unwrap_or(1);
        ok &= block.ok;
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
            checkpoint_every: block.checkpoint.map(|c| c.0),
            checkpoint_keep: block.checkpoint.and_then(|c| c.1),
            teachers,
        })
    }

    /// The stage's name: as written (once per pipeline), or `stageN`.
    fn stage_name(&mut self, name: Option<&ast::Ident>) -> Option<String> {
        let Some(n) = name else {
            return Some(format!("stage{}", self.stage_count));
        };
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
        Some(n.name.clone())
    }

    /// The items of a train block: settings (bound afterwards against the
    /// stage's specs), `evaluate` and `checkpoint`, each at most once.
    fn stage_items(&mut self, span: Span, items: &[StageItem]) -> StageBlock {
        let mut block = StageBlock {
            settings: Vec::new(),
            evaluate: None,
            checkpoint: None,
            eval_span: span,
            ok: true,
        };
        for it in items {
            match it {
                StageItem::Setting { key, value } => block.settings.push(ast::Arg {
                    name: Some(key.clone()),
                    value: value.clone(),
                    span: Span::new(key.span.start, value.span.end),
                }),
                StageItem::Evaluate { what, every, span } => {
                    if block.evaluate.is_some() {
                        self.err(
                            Diag::error("duplicate-argument", *span, "`evaluate` is given twice")
                                .help(
                                "list all evaluators once: `evaluate: [dev, test] every 100 steps`",
                            ),
                        );
                        block.ok = false;
                        continue;
                    }
                    block.eval_span = *span;
                    let (names, ok) = self.stage_evaluators(what);
                    let every = match every {
                        Some(e) => self.positive_steps(e, "`every` of `evaluate`"),
                        None => Some(0),
                    };
                    match every {
                        Some(e) => block.evaluate = Some((names, (e > 0).then_some(e))),
                        None => block.ok = false,
                    }
                    block.ok &= ok;
                }
                StageItem::Checkpoint { every, keep, span } => {
                    if block.checkpoint.is_some() {
                        self.err(
                            Diag::error("duplicate-argument", *span, "`checkpoint` is given twice")
                                .help("give `checkpoint: every N steps, keep K` once"),
                        );
                        block.ok = false;
                        continue;
                    }
                    match self.stage_checkpoint(every, keep.as_ref()) {
                        Some(c) => block.checkpoint = Some(c),
                        None => block.ok = false,
                    }
                }
            }
        }
        block
    }

    /// `evaluate: dev` or `evaluate: [dev, test]`: evaluator names, and
    /// whether all were.
    fn stage_evaluators(&mut self, what: &ast::Value) -> (Vec<String>, bool) {
        let items: Vec<ast::Value> = match &what.kind {
            ValueKind::List(l) => l.clone(),
            _ => vec![what.clone()],
        };
        let mut names = Vec::new();
        let mut ok = true;
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
        (names, ok)
    }

    /// `checkpoint: every N steps, keep K`: the interval, and how many are
    /// kept (`None`: all).
    fn stage_checkpoint(
        &mut self,
        every: &ast::Value,
        keep: Option<&ast::Value>,
    ) -> Option<(u64, Option<usize>)> {
        let e = self.positive_steps(every, "`every` of `checkpoint`");
        let k = match keep {
            Some(k) => match self.convert(k, ArgType::Count, "`keep` of `checkpoint`") {
                Some(ArgValue::Int(n)) if n >= 1 => Some(Some(n as usize)),
                Some(_) => {
                    self.err(
                        Diag::error("out-of-range", k.span, "`keep` must be at least 1")
                            .help("the number of checkpoints kept on disk"),
                    );
                    None
                }
                None => None,
            },
            None => Some(None),
        };
        Some((e?, k?))
    }

    /// The stage's objectives: at least one, each once, each training the
    /// stage's model; with the frozen models (teachers, guides) their
    /// losses name, and whether every objective was right.
    fn stage_objectives(
        &mut self,
        objs: &ArgValue,
        objs_span: Span,
        model_name: &str,
    ) -> Option<(Vec<String>, Vec<String>, bool)> {
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
        let mut ok = true;
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
        Some((objectives, teachers, ok))
    }

    /// Warns about evaluators of another model in a stage's `evaluate`.
    fn warn_foreign_evaluators(&mut self, evaluate: &[String], at: Span, model_name: &str) {
        for e in evaluate {
            let Some(ev) = self.out.evaluator(e) else {
                continue;
            };
            if ev.model != model_name {
                let d = Diag::warning(
                    "model-mismatch",
                    at,
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
}

/// A train block's items before its settings are bound.
struct StageBlock {
    settings: Vec<ast::Arg>,
    /// Evaluator names and the interval (`None`: at the end only).
    evaluate: Option<(Vec<String>, Option<u64>)>,
    /// Interval and how many to keep.
    checkpoint: Option<(u64, Option<usize>)>,
    /// Where `evaluate` was written (the block's span without one).
    eval_span: Span,
    ok: bool,
}

/// The optimizer or scheduler call of a stage: as written, or the
/// registry's default.
fn stage_call(v: Option<(ArgValue, Span)>, setting: &str) -> Option<CallValue> {
    if let Some((ArgValue::Call(c), _)) = v {
        return Some(c);
    }
    match registry::stage().arg(setting)?.default_value() {
        Some(ArgValue::Call(c)) => Some(c),
        _ => None,
    }
}
