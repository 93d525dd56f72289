//! Lowering a checked pipeline to a [`Plan`]: one step per model, data
//! source, stage, save and expectation (and one evaluation per evaluator
//! and model state), each fingerprinted from its configuration, its
//! inputs' fingerprints and the files it reads; data edges to the steps
//! that need a result, order edges where a step changes a model state
//! that earlier steps read.

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};

use super::fingerprint::{combine, strip_paths, FileHasher};
use super::{Edge, Plan, PlanError, PlanStep, StepKind};
use crate::check::{DataKind, DataSource, Expect, Model, Pipeline, Save, Stage, Step};

impl Plan {
    /// Lower a checked pipeline. Reads (and hashes) every data file and
    /// local model directory.
    pub fn build(p: &Pipeline) -> Result<Plan, PlanError> {
        let mut b = Builder {
            g: DiGraph::new(),
            hasher: FileHasher::default(),
            data: HashMap::new(),
            models: HashMap::new(),
            readers: HashMap::new(),
            evals: HashMap::new(),
        };
        for m in &p.models {
            b.load_model(m)?;
        }
        for d in &p.data {
            b.load_data(d)?;
        }
        for step in &p.steps {
            match step {
                Step::Train(s) => b.train(p, s),
                Step::Save(sv) => b.save(p, sv),
                Step::Expect(e) => b.expect(p, e),
            }
        }
        Ok(Plan { graph: b.g })
    }
}

/// The plan while it is built.
struct Builder {
    g: DiGraph<PlanStep, Edge>,
    hasher: FileHasher,
    data: HashMap<String, NodeIndex>,
    /// The step whose result is each model's current state.
    models: HashMap<String, NodeIndex>,
    /// The steps that read each model's current state: a step that
    /// changes the state must come after them (the runtime keeps one copy
    /// of each model and changes it in place).
    readers: HashMap<String, Vec<NodeIndex>>,
    evals: HashMap<(String, NodeIndex), NodeIndex>,
}

impl Builder {
    fn fp(&self, n: NodeIndex) -> &str {
        &self.g[n].fingerprint
    }

    fn add(
        &mut self,
        kind: StepKind,
        label: String,
        config: serde_json::Value,
        inputs: &[NodeIndex],
        extra: &[String],
    ) -> NodeIndex {
        let mut ins: Vec<&str> = inputs.iter().map(|n| self.fp(*n)).collect();
        ins.extend(extra.iter().map(String::as_str));
        let fingerprint = combine(kind.tag(), &config, &ins);
        let n = self.g.add_node(PlanStep {
            kind,
            label,
            fingerprint,
        });
        let mut seen = Vec::new();
        for i in inputs {
            if !seen.contains(i) {
                self.g.add_edge(*i, n, Edge::Data);
                seen.push(*i);
            }
        }
        // Record which model states this step reads.
        let states: Vec<(String, NodeIndex)> = self
            .models
            .iter()
            .filter(|(_, s)| seen.contains(s))
            .map(|(m, s)| (m.clone(), *s))
            .collect();
        for (m, _) in states {
            self.readers.entry(m).or_default().push(n);
        }
        n
    }

    /// Step `n` is model `m`'s new state: it runs after every reader of the
    /// state before it.
    fn set_state(&mut self, m: &str, n: NodeIndex) {
        for r in self.readers.remove(m).unwrap_or_default() {
            if r != n && !self.g.contains_edge(r, n) {
                self.g.add_edge(r, n, Edge::Order);
            }
        }
        self.models.insert(m.to_string(), n);
    }

    fn evaluate(&mut self, p: &Pipeline, name: &str) -> Option<NodeIndex> {
        let ev = p.evaluator(name)?;
        let state = *self.models.get(&ev.model)?;
        if let Some(n) = self.evals.get(&(name.to_string(), state)) {
            return Some(*n);
        }
        let mut inputs = vec![state];
        // Every model (a teacher) and data source (a retrieval corpus,
        // relevance judgements) the evaluator's arguments name.
        inputs.extend(self.bindings(&ev.args, &ev.model));
        let cfg = serde_json::to_value(ev).unwrap_or_default();
        let n = self.add(
            StepKind::Evaluate {
                evaluator: name.to_string(),
                model: ev.model.clone(),
            },
            format!("evaluate {name} ({} of {})", ev.kind, ev.model),
            cfg,
            &inputs,
            &[],
        );
        self.evals.insert((name.to_string(), state), n);
        Some(n)
    }
}

impl Builder {
    /// The steps of the models and data sources that `args` name (the
    /// model `skip` is the one trained or evaluated, whose state is an
    /// input already).
    fn bindings(&self, args: &crate::check::Args, skip: &str) -> Vec<NodeIndex> {
        let models = args.models().into_iter().filter(|m| *m != skip);
        let models = models.filter_map(|m| self.models.get(m).copied());
        let data = args.data_sources().into_iter();
        models
            .chain(data.filter_map(|d| self.data.get(d).copied()))
            .collect()
    }
}

/// A model's modules, as the plan prints them.
fn chain_label(m: &Model) -> String {
    let parts: Vec<String> = m.modules.iter().map(|x| x.label()).collect();
    let dim = m.dim.map(|d| format!(" [{d}]")).unwrap_or_default();
    format!("{}{dim}", parts.join(" -> "))
}

/// Steps by kind.
impl Builder {
    fn load_model(&mut self, m: &Model) -> Result<(), PlanError> {
        let mut extra = Vec::new();
        for module in &m.modules {
            if let Some(d) = &module.dir {
                extra.push(self.hasher.dir(d).map_err(|e| PlanError {
                    path: d.display().to_string(),
                    source: e,
                })?);
            }
        }
        let mut cfg = serde_json::to_value(m).unwrap_or_default();
        strip_paths(&mut cfg);
        let n = self.add(
            StepKind::LoadModel {
                model: m.name.clone(),
            },
            format!("load model {}: {}", m.name, chain_label(m)),
            cfg,
            &[],
            &extra,
        );
        self.models.insert(m.name.clone(), n);
        Ok(())
    }

    fn load_data(&mut self, d: &DataSource) -> Result<(), PlanError> {
        let mut extra = Vec::new();
        let mut inputs = Vec::new();
        let what = match &d.kind {
            DataKind::File { path, written, .. } => {
                extra.push(self.hasher.file(path).map_err(|e| PlanError {
                    path: written.clone(),
                    source: e,
                })?);
                written.clone()
            }
            DataKind::Zip { sources } => {
                inputs.extend(sources.iter().filter_map(|s| self.data.get(s).copied()));
                format!("zip({})", sources.join(", "))
            }
            DataKind::Triplets { source, by, .. } => {
                inputs.extend(self.data.get(source).copied());
                format!("triplets of {source} by {by}")
            }
            DataKind::Ref { source } => {
                inputs.extend(self.data.get(source).copied());
                source.clone()
            }
            DataKind::Derived {
                transform,
                args,
                inputs: sources,
            } => {
                inputs.extend(sources.iter().filter_map(|s| self.data.get(s).copied()));
                // A model it encodes with: its state then (the order
                // edges keep a later stage from changing it first).
                inputs.extend(
                    args.models()
                        .iter()
                        .filter_map(|m| self.models.get(*m).copied()),
                );
                let mut named: Vec<String> = sources.clone();
                named.extend(args.models().iter().map(|m| format!("model {m}")));
                format!("{transform}({})", named.join(", "))
            }
        };
        let cols: Vec<&str> = d.columns.iter().map(|c| c.name.as_str()).collect();
        let limit = d.limit.map(|l| format!(", limit {l}")).unwrap_or_default();
        let mut cfg = serde_json::to_value(d).unwrap_or_default();
        strip_paths(&mut cfg);
        let n = self.add(
            StepKind::LoadData {
                data: d.name.clone(),
                recorded: d.is_recorded(),
            },
            format!(
                "load data {}: {what} {{{}}}{limit}",
                d.name,
                cols.join(", ")
            ),
            cfg,
            &inputs,
            &extra,
        );
        self.data.insert(d.name.clone(), n);
        Ok(())
    }

    /// A stage: reads the model's state, its objectives' data and the
    /// models and data their arguments and its evaluators name; its result
    /// is the model's new state.
    fn train(&mut self, p: &Pipeline, s: &Stage) {
        let Some(&state) = self.models.get(&s.model) else {
            return;
        };
        let mut inputs = vec![state];
        let mut cfg = serde_json::json!({ "stage": s });
        let mut objs = Vec::new();
        for o in &s.objectives {
            if let Some(obj) = p.objective(o) {
                inputs.extend(self.data.get(&obj.data).copied());
                inputs.extend(self.bindings(&obj.args, &s.model));
                objs.push(serde_json::to_value(obj).unwrap_or_default());
            }
        }
        let mut evs = Vec::new();
        for e in &s.evaluate {
            if let Some(ev) = p.evaluator(e) {
                inputs.extend(self.bindings(&ev.args, &s.model));
                evs.push(serde_json::to_value(ev).unwrap_or_default());
            }
        }
        cfg["objectives"] = serde_json::Value::Array(objs);
        cfg["evaluators"] = serde_json::Value::Array(evs);
        let n = self.add(
            StepKind::Train {
                stage: s.name.clone(),
                model: s.model.clone(),
            },
            format!(
                "train {} ({}): {}",
                s.name,
                s.model,
                s.objectives.join(", ")
            ),
            cfg,
            &inputs,
            &[],
        );
        self.set_state(&s.model, n);
    }

    fn save(&mut self, p: &Pipeline, sv: &Save) {
        let Some(&state) = self.models.get(&sv.model) else {
            return;
        };
        let path = sv.path.display().to_string();
        let best = sv
            .best_by
            .as_ref()
            .map(|m| format!(" best by {}.{}", m.evaluator, m.metric))
            .unwrap_or_default();
        // Fingerprint the path relative to the pipeline, so that it does
        // not depend on where the checkout lives.
        let mut cfg = serde_json::to_value(sv).unwrap_or_default();
        cfg["path"] =
            serde_json::Value::String(relative_to(&sv.path, &p.base_dir).display().to_string());
        let n = self.add(
            StepKind::Save {
                model: sv.model.clone(),
                path: path.clone(),
                best: sv.best_by.is_some(),
            },
            format!("save {} to {path}{best}", sv.model),
            cfg,
            &[state],
            &[],
        );
        // The best weights become the model's state from here on (as the
        // Trainer's `load_best_model_at_end`).
        if sv.best_by.is_some() {
            self.set_state(&sv.model, n);
        }
    }

    /// An expectation reads the evaluation of the model's state at its
    /// place in the pipeline.
    fn expect(&mut self, p: &Pipeline, e: &Expect) {
        let Some(ev) = self.evaluate(p, &e.metric.evaluator) else {
            return;
        };
        let cfg = serde_json::to_value(e).unwrap_or_default();
        self.add(
            StepKind::Expect {
                evaluator: e.metric.evaluator.clone(),
                metric: e.metric.metric.clone(),
                op: e.op.to_string(),
                value: e.value,
            },
            format!(
                "expect {}.{} {} {}",
                e.metric.evaluator, e.metric.metric, e.op, e.value
            ),
            cfg,
            &[ev],
            &[],
        );
    }
}

/// `path` relative to `base` (both absolute, normalised).
fn relative_to(path: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}
