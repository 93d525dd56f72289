//! The execution plan: a DAG of fingerprinted steps (load model, load data,
//! train stage, evaluate, save, expect), printed as text or Graphviz DOT.

pub mod fingerprint;

use std::collections::HashMap;
use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

use crate::check::{DataKind, Pipeline, Step};
use fingerprint::{combine, strip_paths, FileHasher};

/// What a step does.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    LoadModel {
        model: String,
    },
    LoadData {
        data: String,
        /// The result is recorded in the run directory and reused by
        /// fingerprint (a mined source).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        recorded: bool,
    },
    Train {
        stage: String,
        model: String,
    },
    Evaluate {
        evaluator: String,
        model: String,
    },
    Save {
        model: String,
        path: String,
        /// `best by`: the best weights become the model's state.
        best: bool,
    },
    Expect {
        evaluator: String,
        metric: String,
        op: String,
        value: f64,
    },
}

impl StepKind {
    /// The model a step loads, trains, evaluates or saves.
    pub fn model(&self) -> Option<&str> {
        match self {
            StepKind::LoadModel { model }
            | StepKind::Train { model, .. }
            | StepKind::Evaluate { model, .. }
            | StepKind::Save { model, .. } => Some(model),
            StepKind::LoadData { .. } | StepKind::Expect { .. } => None,
        }
    }

    /// Whether the step's result is a state of its model (a `save` with
    /// `best by` is one: the best weights become the model's state).
    pub fn is_model_state(&self) -> bool {
        matches!(
            self,
            StepKind::LoadModel { .. } | StepKind::Train { .. } | StepKind::Save { best: true, .. }
        )
    }

    pub fn tag(&self) -> &'static str {
        match self {
            StepKind::LoadModel { .. } => "load-model",
            StepKind::LoadData { .. } => "load-data",
            StepKind::Train { .. } => "train",
            StepKind::Evaluate { .. } => "evaluate",
            StepKind::Save { .. } => "save",
            StepKind::Expect { .. } => "expect",
        }
    }
}

/// One node of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub kind: StepKind,
    /// A short description.
    pub label: String,
    /// SHA-256 (hex) of configuration, inputs and file contents.
    pub fingerprint: String,
}

/// Why one step comes before another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Edge {
    /// The later step reads the earlier one's result.
    Data,
    /// The later step changes a model state the earlier one reads (the
    /// runtime keeps one copy of each model), so it must wait for it.
    Order,
}

/// The plan: edges go from a step to the steps that need its result (or
/// must wait for it).
#[derive(Debug, Clone)]
pub struct Plan {
    pub graph: DiGraph<PlanStep, Edge>,
}

/// Why a plan could not be built (a file vanished or is unreadable).
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{path}` to fingerprint it: {source}")]
pub struct PlanError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

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

fn chain_label(m: &crate::check::Model) -> String {
    let parts: Vec<String> = m.modules.iter().map(|x| x.label()).collect();
    let dim = m.dim.map(|d| format!(" [{d}]")).unwrap_or_default();
    format!("{}{dim}", parts.join(" -> "))
}

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
            let mut extra = Vec::new();
            for module in &m.modules {
                if let Some(d) = &module.dir {
                    extra.push(b.hasher.dir(d).map_err(|e| PlanError {
                        path: d.display().to_string(),
                        source: e,
                    })?);
                }
            }
            let mut cfg = serde_json::to_value(m).unwrap_or_default();
            strip_paths(&mut cfg);
            let n = b.add(
                StepKind::LoadModel {
                    model: m.name.clone(),
                },
                format!("load model {}: {}", m.name, chain_label(m)),
                cfg,
                &[],
                &extra,
            );
            b.models.insert(m.name.clone(), n);
        }
        for d in &p.data {
            let mut extra = Vec::new();
            let mut inputs = Vec::new();
            let what = match &d.kind {
                DataKind::File { path, written, .. } => {
                    extra.push(b.hasher.file(path).map_err(|e| PlanError {
                        path: written.clone(),
                        source: e,
                    })?);
                    written.clone()
                }
                DataKind::Zip { sources } => {
                    inputs.extend(sources.iter().filter_map(|s| b.data.get(s).copied()));
                    format!("zip({})", sources.join(", "))
                }
                DataKind::Triplets { source, by, .. } => {
                    inputs.extend(b.data.get(source).copied());
                    format!("triplets of {source} by {by}")
                }
                DataKind::Ref { source } => {
                    inputs.extend(b.data.get(source).copied());
                    source.clone()
                }
                DataKind::Derived {
                    transform,
                    args,
                    inputs: sources,
                } => {
                    inputs.extend(sources.iter().filter_map(|s| b.data.get(s).copied()));
                    // A model it encodes with: its state then (the order
                    // edges keep a later stage from changing it first).
                    inputs.extend(
                        args.models()
                            .iter()
                            .filter_map(|m| b.models.get(*m).copied()),
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
            let n = b.add(
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
            b.data.insert(d.name.clone(), n);
        }
        for step in &p.steps {
            match step {
                Step::Train(s) => {
                    let Some(&state) = b.models.get(&s.model) else {
                        continue;
                    };
                    let mut inputs = vec![state];
                    let mut cfg = serde_json::json!({ "stage": s });
                    let mut objs = Vec::new();
                    for o in &s.objectives {
                        if let Some(obj) = p.objective(o) {
                            inputs.extend(b.data.get(&obj.data).copied());
                            inputs.extend(b.bindings(&obj.args, &s.model));
                            objs.push(serde_json::to_value(obj).unwrap_or_default());
                        }
                    }
                    let mut evs = Vec::new();
                    for e in &s.evaluate {
                        if let Some(ev) = p.evaluator(e) {
                            inputs.extend(b.bindings(&ev.args, &s.model));
                            evs.push(serde_json::to_value(ev).unwrap_or_default());
                        }
                    }
                    cfg["objectives"] = serde_json::Value::Array(objs);
                    cfg["evaluators"] = serde_json::Value::Array(evs);
                    let n = b.add(
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
                    b.set_state(&s.model, n);
                }
                Step::Save(sv) => {
                    let Some(&state) = b.models.get(&sv.model) else {
                        continue;
                    };
                    let path = sv.path.display().to_string();
                    let best = sv
                        .best_by
                        .as_ref()
                        .map(|m| format!(" best by {}.{}", m.evaluator, m.metric))
                        .unwrap_or_default();
                    // Fingerprint the path relative to the pipeline, so that
                    // it does not depend on where the checkout lives.
                    let mut cfg = serde_json::to_value(sv).unwrap_or_default();
                    cfg["path"] = serde_json::Value::String(
                        relative_to(&sv.path, &p.base_dir).display().to_string(),
                    );
                    let n = b.add(
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
                    // The best weights become the model's state from here
                    // on (as the Trainer's `load_best_model_at_end`).
                    if sv.best_by.is_some() {
                        b.set_state(&sv.model, n);
                    }
                }
                Step::Expect(e) => {
                    let Some(ev) = b.evaluate(p, &e.metric.evaluator) else {
                        continue;
                    };
                    let cfg = serde_json::to_value(e).unwrap_or_default();
                    b.add(
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
        }
        Ok(Plan { graph: b.g })
    }

    /// Every step with its index, in the order they were planned.
    pub fn steps(&self) -> impl Iterator<Item = (NodeIndex, &PlanStep)> {
        self.graph.node_indices().map(move |n| (n, &self.graph[n]))
    }

    /// The steps in dependency order: a step comes after every step it
    /// has an edge from; among the steps ready at once, the one planned
    /// first (Kahn's algorithm), so the order is stable.
    pub fn execution_order(&self) -> Vec<NodeIndex> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut missing: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| self.graph.edges_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = self
            .graph
            .node_indices()
            .filter(|n| missing[n.index()] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(missing.len());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(n);
            for e in self.graph.edges_directed(n, Direction::Outgoing) {
                let t = e.target();
                missing[t.index()] -= 1;
                if missing[t.index()] == 0 {
                    ready.push(Reverse(t));
                }
            }
        }
        order
    }

    /// The steps whose results `n` needs (data edges only), in plan order.
    pub fn inputs(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .filter(|e| *e.weight() == Edge::Data)
            .map(|e| e.source())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The step whose result is the model state `n` starts from (its
    /// model's LoadModel, Train or `save ... best by` before it).
    pub fn state_input(&self, n: NodeIndex) -> Option<NodeIndex> {
        let model = self.graph[n].kind.model()?;
        self.inputs(n).into_iter().find(|&i| {
            let k = &self.graph[i].kind;
            k.model() == Some(model) && k.is_model_state()
        })
    }

    pub fn to_text(&self) -> String {
        self.to_text_with(&|_| None)
    }

    /// The plan as text, each step followed by what `status` says of it
    /// (`stpipe plan` marks the steps a run would reuse).
    pub fn to_text_with(&self, status: &dyn Fn(NodeIndex) -> Option<String>) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} steps", self.graph.node_count());
        for (n, st) in self.steps() {
            let deps: Vec<String> = self
                .inputs(n)
                .iter()
                .map(|d| format!("#{}", d.index() + 1))
                .collect();
            let waits: Vec<String> = self
                .graph
                .edges_directed(n, Direction::Incoming)
                .filter(|e| *e.weight() == Edge::Order)
                .map(|e| format!("#{}", e.source().index() + 1))
                .collect();
            let mut after = if deps.is_empty() {
                String::new()
            } else {
                format!("  <- {}", deps.join(", "))
            };
            if !waits.is_empty() {
                after.push_str(&format!("  (after {})", waits.join(", ")));
            }
            let note = status(n).map(|t| format!("  [{t}]")).unwrap_or_default();
            let _ = writeln!(
                s,
                "#{:<3} {:<10} {}  {}{after}{note}",
                n.index() + 1,
                st.kind.tag(),
                &st.fingerprint[..16],
                st.label
            );
        }
        s
    }

    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph plan {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n");
        for (n, st) in self.steps() {
            let color = match st.kind {
                StepKind::LoadModel { .. } => "#dbeafe",
                StepKind::LoadData { .. } => "#dcfce7",
                StepKind::Train { .. } => "#fde68a",
                StepKind::Evaluate { .. } => "#e9d5ff",
                StepKind::Save { .. } => "#fecaca",
                StepKind::Expect { .. } => "#e5e7eb",
            };
            let label = format!("{}\n{}", st.label, &st.fingerprint[..12]);
            let _ = writeln!(
                s,
                "  n{} [label=\"{}\", fillcolor=\"{color}\"];",
                n.index(),
                dot_escape(&label)
            );
        }
        for e in self.graph.edge_references() {
            let style = match e.weight() {
                Edge::Data => "",
                Edge::Order => " [style=dashed]",
            };
            let _ = writeln!(
                s,
                "  n{} -> n{}{style};",
                e.source().index(),
                e.target().index()
            );
        }
        s.push_str("}\n");
        s
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
