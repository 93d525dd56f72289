//! What a run leaves for people and CI systems besides the run directory's
//! own records: `--report` files (JUnit XML, a JSON document), the
//! `curves.png` picture of the metrics log, and the self-contained
//! `report.html` of `stpipe report`.
//!
//! Everything here reads what the run recorded (the [`RunSummary`], the
//! run directory's `metrics.jsonl`, `pipeline.stp`, `plan.txt`); nothing
//! here trains or evaluates.

pub mod curves;
pub mod html;
pub mod junit;
mod metrics_log;

use std::path::{Path, PathBuf};

use crate::runtime::train::outcome::RunSummary;

pub use metrics_log::MetricsLog;

/// How a run ended, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// It finished and every `expect` held.
    Passed,
    /// It finished, and an `expect` did not hold.
    ExpectationFailed,
    /// A step failed.
    Error,
    /// It was stopped by a signal.
    Interrupted,
    /// The pipeline did not check; nothing ran.
    Invalid,
}

impl RunStatus {
    /// `stpipe run`'s exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Passed => 0,
            RunStatus::ExpectationFailed => 3,
            RunStatus::Error | RunStatus::Invalid => 1,
            RunStatus::Interrupted => 130,
        }
    }
}

/// Everything a report says about one `stpipe run`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// The pipeline file as given on the command line.
    pub pipeline: String,
    pub run_dir: String,
    pub status: RunStatus,
    pub exit_code: u8,
    /// Total wall-clock seconds of the command.
    pub seconds: f64,
    /// The checker's diagnostics (errors and warnings) as `check --format
    /// json` writes them.
    pub diagnostics: Vec<serde_json::Value>,
    /// The checker's diagnostics as text, for a report that has no room
    /// for structure (a JUnit failure's body).
    #[serde(skip)]
    pub diagnostics_text: String,
    #[serde(flatten)]
    pub summary: RunSummary,
}

/// The kinds of `--report` files, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Junit,
    Json,
}

impl ReportFormat {
    /// `report.xml` is JUnit XML, `report.json` the JSON document.
    pub fn of(path: &Path) -> Result<Self, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("xml") => Ok(ReportFormat::Junit),
            Some(e) if e.eq_ignore_ascii_case("json") => Ok(ReportFormat::Json),
            _ => Err(format!(
                "cannot tell the report format of `{}`: name it `*.xml` (JUnit XML) or `*.json` (JSON)",
                path.display()
            )),
        }
    }
}

/// A `--report PATH` argument: the path and its format.
#[derive(Debug, Clone)]
pub struct ReportTarget {
    pub path: PathBuf,
    pub format: ReportFormat,
}

/// Parse `--report PATH` (for clap): an unknown extension is a usage error.
pub fn parse_target(s: &str) -> Result<ReportTarget, String> {
    let path = PathBuf::from(s);
    let format = ReportFormat::of(&path)?;
    Ok(ReportTarget { path, format })
}

impl RunReport {
    /// The report's text in `format`.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Junit => junit::render(self),
            ReportFormat::Json => {
                serde_json::to_string_pretty(self)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
                    + "\n"
            }
        }
    }

    /// Write the report to `target` atomically.
    pub fn write(&self, target: &ReportTarget) -> std::io::Result<()> {
        if let Some(dir) = target.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsio::create_dir_all(dir)?;
        }
        crate::fsio::write_atomic(&target.path, self.render(target.format).as_bytes())
    }
}
