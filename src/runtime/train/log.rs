//! What a run reports: a progress bar per stage on stderr, and a metrics
//! log (JSON Lines) in the run directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::runtime::eval::EvalMetrics;

use super::error::{Result, RunError};

/// The stage name of evaluations made after training (for `expect`) in
/// `metrics.jsonl`.
pub const FINAL_STAGE: &str = "expect";

/// Whether `file` is non-empty and its last byte is not a newline.
fn ends_without_newline(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// The run's log: `metrics.jsonl` plus what is shown on the terminal.
pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
    progress: bool,
    /// Every evaluation of the run, in order: (stage, step, evaluator, metrics).
    pub evaluations: Vec<(String, u64, String, EvalMetrics)>,
    /// The last step this run logged for each stage, with its losses (for
    /// the reports).
    pub last_steps: std::collections::HashMap<String, (u64, Vec<(String, f32)>)>,
    /// Turns what is written or shown into its redacted form (environment
    /// values back to `${NAME}`).
    redact: Box<dyn Fn(&str) -> String>,
}

impl RunLog {
    pub fn open(run_dir: &Path, progress: bool) -> Result<Self> {
        let path = run_dir.join("metrics.jsonl");
        let io = |source| RunError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io)?;
        // A run killed in the middle of a line leaves it without its
        // newline: end it, so that this run's lines stay whole.
        if ends_without_newline(&mut file).map_err(io)? {
            file.write_all(b"\n").map_err(io)?;
        }
        Ok(RunLog {
            path,
            file,
            progress,
            evaluations: Vec::new(),
            last_steps: Default::default(),
            redact: Box::new(str::to_string),
        })
    }

    /// Drop the log lines a stage is about to write again: those of
    /// stage `stage` after step `start` when it resumes from a checkpoint
    /// there, or all of its lines when it starts over (`start` 0). The log
    /// then holds every step once, however often the run was interrupted.
    pub fn forget_stage(&mut self, stage: &str, start: u64) -> Result<()> {
        self.forget_where(|v| {
            v.get("stage").and_then(|s| s.as_str()) == Some(stage)
                && v.get("step")
                    .and_then(|s| s.as_u64())
                    .is_some_and(|k| start == 0 || k > start)
        })
    }

    /// Log an evaluation made after training (for `expect`), under the
    /// stage name [`FINAL_STAGE`], replacing the lines an earlier attempt
    /// logged before a crash kept its result from being recorded.
    pub fn final_eval(&mut self, evaluator: &str, metrics: &EvalMetrics) -> Result<()> {
        self.forget_where(|v| {
            v.get("stage").and_then(|s| s.as_str()) == Some(FINAL_STAGE)
                && v.get("evaluator").and_then(|s| s.as_str()) == Some(evaluator)
        })?;
        self.eval(FINAL_STAGE, 0, evaluator, metrics);
        Ok(())
    }

    /// Rewrite the log without the lines `drop` selects (atomically).
    fn forget_where(&mut self, drop: impl Fn(&serde_json::Value) -> bool) -> Result<()> {
        let io = |source| RunError::io(&self.path, source);
        let text = std::fs::read_to_string(&self.path).map_err(io)?;
        let mut kept = String::with_capacity(text.len());
        let mut dropped = false;
        for line in text.lines() {
            let v: Option<serde_json::Value> = serde_json::from_str(line).ok();
            if v.as_ref().is_some_and(&drop) {
                dropped = true;
            } else {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if !dropped {
            return Ok(());
        }
        crate::fsio::write_atomic(&self.path, kept.as_bytes()).map_err(io)?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(io)?;
        Ok(())
    }

    /// Every evaluation made while training that the log file records, in
    /// order: this run's and those of the attempts it resumed (each step
    /// once), so that what is derived from it does not depend on how often
    /// the run was interrupted.
    pub fn recorded_evaluations(&self) -> Vec<(String, u64, String, EvalMetrics)> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let stage = v["stage"].as_str()?;
                if stage == FINAL_STAGE {
                    return None;
                }
                let entries = v["metrics"]
                    .as_object()?
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                Some((
                    stage.to_string(),
                    v["step"].as_u64()?,
                    v["evaluator"].as_str()?.to_string(),
                    EvalMetrics {
                        entries,
                        primary: String::new(),
                    },
                ))
            })
            .collect()
    }

    /// Redact every line with `f` (see `Pipeline::redact`).
    pub fn redacting(mut self, f: impl Fn(&str) -> String + 'static) -> Self {
        self.redact = Box::new(f);
        self
    }

    fn write(&mut self, v: serde_json::Value) {
        // One write per line (formatting straight into the file would issue
        // one per JSON token, and a kill could tear the line). The log is a
        // record, not a reason to stop training: a failed write is reported
        // once per line on stderr.
        let line = (self.redact)(&format!("{v}\n"));
        if crate::fsio::append(&mut self.file, &self.path, line.as_bytes()).is_err() {
            eprintln!("warning: cannot append to {}", self.path.display());
        }
    }

    /// A line for the user (stderr) and the log.
    pub fn note(&mut self, msg: &str) {
        eprintln!("{}", (self.redact)(msg));
        self.write(serde_json::json!({ "note": msg }));
    }

    /// A note already shown on stderr (as it happened, by code that could
    /// not hold the log), written to the metrics log only.
    pub fn note_shown(&mut self, msg: &str) {
        self.write(serde_json::json!({ "note": msg }));
    }

    /// Show a note on stderr at once, as [`RunLog::note`] would.
    pub fn show(&self, msg: &str) {
        eprintln!("{}", (self.redact)(msg));
    }

    /// A progress bar for a stage of `total` steps, `done` already taken.
    pub fn stage_bar(&self, stage: &str, total: u64, done: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar.set_position(done);
        bar
    }

    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        stage: &str,
        step: u64,
        losses: &[(String, f32)],
        lr: f64,
        grad_norm: f64,
        examples_per_s: f64,
        bar: &ProgressBar,
    ) {
        self.last_steps
            .insert(stage.to_string(), (step, losses.to_vec()));
        let shown: Vec<String> = losses.iter().map(|(o, l)| format!("{o} {l:.4}")).collect();
        bar.set_position(step);
        bar.set_message(format!(
            "loss {} | lr {lr:.2e} | {examples_per_s:.1} ex/s",
            shown.join(", ")
        ));
        let losses: serde_json::Map<String, serde_json::Value> = losses
            .iter()
            .map(|(o, l)| (o.clone(), serde_json::json!(l)))
            .collect();
        self.write(serde_json::json!({
            "stage": stage, "step": step, "loss": losses, "lr": lr,
            "grad_norm": grad_norm, "examples_per_s": examples_per_s,
        }));
    }

    pub fn eval(&mut self, stage: &str, step: u64, evaluator: &str, m: &EvalMetrics) {
        let metrics: serde_json::Map<String, serde_json::Value> = m
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        let primary = m.primary_value().unwrap_or(f64::NAN);
        if self.progress {
            eprintln!(
                "  [{stage} step {step}] {evaluator}.{} = {primary:.4}",
                m.primary
            );
        }
        self.write(serde_json::json!({
            "stage": stage, "step": step, "evaluator": evaluator, "metrics": metrics,
        }));
        self.evaluations
            .push((stage.to_string(), step, evaluator.to_string(), m.clone()));
    }
}
