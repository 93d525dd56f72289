//! What a run did, step by step: the summary `stpipe run` prints and
//! writes to `summary.json`, and that `--report` turns into JUnit XML or a
//! JSON report. A failed run keeps the outcomes of the steps before the
//! failure, so that CI shows how far it got.

use std::path::PathBuf;

/// The outcome of one `expect`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExpectOutcome {
    pub evaluator: String,
    pub metric: String,
    pub op: String,
    pub threshold: f64,
    pub value: f64,
    pub passed: bool,
}

/// What became of one plan step in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Computed by this run.
    Executed,
    /// An earlier run's recorded result stands (restored or not needed).
    Reused,
    /// This step failed: the run stopped here.
    Failed,
    /// Not reached: an earlier step failed or the run was stopped.
    NotRun,
}

/// One plan step's outcome, in execution order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepOutcome {
    /// The plan's label (`train stage1 (sbert): sim`).
    pub label: String,
    /// The plan's tag: `load-model`, `load-data`, `train`, `evaluate`,
    /// `save`, `expect`.
    pub kind: String,
    pub status: StepStatus,
    /// Wall-clock seconds the step took in this run.
    pub seconds: f64,
    /// What it produced, in a line (rows read, metrics, the saved path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why it failed (redacted like everything the run directory gets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub saved: Vec<PathBuf>,
    pub expectations: Vec<ExpectOutcome>,
    /// The last value of every evaluator's primary metric.
    pub final_metrics: Vec<(String, String, f64)>,
    /// Every evaluator's primary metric before training: its step-0 value in
    /// the first stage that evaluated it (see the stage setting
    /// `evaluate_at_start`). Kept in checkpoints, so resumed and finished
    /// runs report it too.
    pub baseline_metrics: Vec<(String, String, f64)>,
    /// The steps reused from an earlier run (their labels).
    pub reused: Vec<String>,
    /// Every plan step, in execution order.
    #[serde(default)]
    pub steps: Vec<StepOutcome>,
    /// The error that stopped the run, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunSummary {
    pub fn failed_expectations(&self) -> Vec<&ExpectOutcome> {
        self.expectations.iter().filter(|e| !e.passed).collect()
    }

    pub(super) fn set_final(&mut self, evaluator: &str, metric: &str, value: f64) {
        self.final_metrics.retain(|(n, _, _)| n != evaluator);
        self.final_metrics
            .push((evaluator.to_string(), metric.to_string(), value));
    }

    /// The baseline (before training) of `evaluator.metric`, if measured.
    pub fn baseline(&self, evaluator: &str, metric: &str) -> Option<f64> {
        self.baseline_metrics
            .iter()
            .find(|(n, m, _)| n == evaluator && m == metric)
            .map(|(_, _, b)| *b)
    }
}
