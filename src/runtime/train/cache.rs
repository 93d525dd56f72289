//! Which steps of a plan a run can reuse, and which it must execute.
//!
//! A step's result is reusable when its fingerprint (the plan's, plus the
//! run options that change what it does) is recorded with it: a stage's
//! finished final checkpoint, an evaluation's metrics file in the run
//! directory, a saved model's `stpipe_model.json`. A reusable step is not
//! executed; it is *restored* (a stage's final weights set on its model, an
//! evaluation read back) only when a step that must execute needs its
//! result. Loading a model or data source is not recorded (it happens
//! when something executed or restored needs it), except a mined source,
//! whose rows are recorded in `RUN_DIR/data/` and restored from there.

use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;

use crate::plan::{Plan, StepKind};

use super::run::RunOptions;

/// The marker a saved model carries, with the fingerprint of its save.
pub use crate::runtime::st_format::save::MARKER as MODEL_MARKER;

/// What a run does with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Not needed: reusable, and nothing executed needs it.
    Skip,
    /// Its recorded result is set up for a step that needs it.
    Restore,
    /// It runs.
    Execute,
}

impl Action {
    /// How `stpipe plan` and the run directory's `plan.txt` show it.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Execute => "runs",
            Action::Restore => "reused (restored)",
            Action::Skip => "reused",
        }
    }
}

/// The fingerprint a step's recorded result must carry: the plan's, plus
/// the run options that change what steps do (a smoke run is not a full
/// run).
pub fn run_fingerprint(plan_fp: &str, opts: &RunOptions) -> String {
    let mut fp = plan_fp.to_string();
    if let Some(n) = opts.max_steps {
        fp.push_str(&format!("+max-steps={n}"));
    }
    if let Some(n) = opts.limit {
        fp.push_str(&format!("+limit={n}"));
    }
    if opts.skip_bad_rows {
        fp.push_str("+skip-bad-rows");
    }
    fp
}

/// The fingerprint a recorded data source must carry: the plan's, plus
/// the run options that change what data steps read (`--max-steps` does
/// not, so a longer run reuses what a smoke run mined).
pub fn data_fingerprint(plan_fp: &str, opts: &RunOptions) -> String {
    let mut fp = plan_fp.to_string();
    if let Some(n) = opts.limit {
        fp.push_str(&format!("+limit={n}"));
    }
    if opts.skip_bad_rows {
        fp.push_str("+skip-bad-rows");
    }
    fp
}

/// Where a stage keeps its checkpoints and best weights.
pub fn stage_dir(opts: &RunOptions, stage: &str) -> PathBuf {
    opts.run_dir.join("stages").join(stage)
}

/// Where an evaluation's metrics are recorded.
pub fn evaluation_file(opts: &RunOptions, plan_fp: &str) -> PathBuf {
    opts.run_dir
        .join("evaluations")
        .join(format!("{}.json", &plan_fp[..plan_fp.len().min(32)]))
}

/// The fingerprint recorded in a saved model's marker.
pub fn saved_fingerprint(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join(MODEL_MARKER)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("fingerprint")?.as_str().map(str::to_string)
}

/// Whether a step's result is recorded with its fingerprint.
pub fn reusable(plan: &Plan, n: NodeIndex, opts: &RunOptions) -> bool {
    let step = &plan.graph[n];
    let fp = run_fingerprint(&step.fingerprint, opts);
    match &step.kind {
        StepKind::Train { stage, .. } => {
            super::stage::finished(&stage_dir(opts, stage), &fp).is_some()
        }
        StepKind::Evaluate { .. } => std::fs::read(evaluation_file(opts, &step.fingerprint))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["fingerprint"].as_str() == Some(fp.as_str())),
        StepKind::Save { path, .. } => {
            saved_fingerprint(Path::new(path)).as_deref() == Some(fp.as_str())
        }
        StepKind::LoadData {
            data,
            recorded: true,
        } => crate::runtime::data::record::exists(
            &opts.run_dir,
            data,
            &data_fingerprint(&step.fingerprint, opts),
        ),
        StepKind::LoadModel { .. } | StepKind::LoadData { .. } | StepKind::Expect { .. } => false,
    }
}

/// What the run does with every step (indexed like the plan's nodes).
pub fn actions(plan: &Plan, opts: &RunOptions) -> Vec<Action> {
    let order = plan.execution_order();
    let n = plan.graph.node_count();
    let reuse: Vec<bool> = (0..n)
        .map(|i| reusable(plan, NodeIndex::new(i), opts))
        .collect();
    let mut act = vec![Action::Skip; n];
    for &node in &order {
        let i = node.index();
        act[i] = match &plan.graph[node].kind {
            StepKind::Expect { .. } => Action::Execute,
            // A mined source is a result of its own (the run writes it to
            // the run directory), needed by a later step or not.
            StepKind::Train { .. }
            | StepKind::Evaluate { .. }
            | StepKind::Save { .. }
            | StepKind::LoadData { recorded: true, .. }
                if !reuse[i] =>
            {
                Action::Execute
            }
            _ => Action::Skip,
        };
    }
    // What the steps that run need, latest first.
    for &node in order.iter().rev() {
        let i = node.index();
        let needs: Vec<NodeIndex> = match (act[i], &plan.graph[node].kind) {
            (Action::Skip, _) => Vec::new(),
            (Action::Restore, StepKind::Evaluate { .. } | StepKind::LoadData { .. }) => Vec::new(),
            (Action::Restore, _) | (_, StepKind::Save { .. }) => {
                plan.state_input(node).into_iter().collect()
            }
            (Action::Execute, _) => plan.inputs(node),
        };
        for d in needs {
            let j = d.index();
            if act[j] == Action::Skip {
                act[j] = match plan.graph[d].kind {
                    StepKind::LoadData { recorded: true, .. } if reuse[j] => Action::Restore,
                    StepKind::LoadModel { .. } | StepKind::LoadData { .. } => Action::Execute,
                    _ => Action::Restore,
                };
            }
        }
    }
    act
}
