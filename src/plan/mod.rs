//! The execution plan: a DAG of fingerprinted steps (load model, load data,
//! train stage, evaluate, save, expect), printed as text or Graphviz DOT.

mod build;
pub mod fingerprint;

use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

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

impl Plan {
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
