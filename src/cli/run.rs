//! `stpipe run FILE`: check, plan and execute a pipeline.
//!
//! Exit codes: 0 when the run finished and every `expect` held; 1 when the
//! pipeline is invalid or the run failed; 2 on usage errors; 3 when the run
//! finished but an `expect` did not hold; 130 when stopped by a signal.
//! `--report` files are written in every case, an invalid pipeline too.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::check::Options;
use crate::report::{ReportTarget, RunReport, RunStatus};
use crate::runtime::train::run::{run as run_pipeline, RunOptions, RunSummary};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub run: RunFlags,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Write a report of the run: `*.xml` JUnit XML (a test case per step
    /// and per `expect`), `*.json` a JSON document (repeatable).
    #[arg(long, value_name = "FILE", value_parser = crate::report::parse_target)]
    pub report: Vec<ReportTarget>,
    /// Run once per value of a `let` binding, each in its own run directory
    /// under the run directory, and write a table of the final metrics
    /// (`sweep.md`, `sweep.json`); repeated, it runs every combination.
    #[arg(long, value_name = "NAME=V1,V2,...", value_parser = crate::check::overrides::parse_sweep)]
    pub sweep: Vec<crate::check::overrides::Sweep>,
}

/// The options of a run (shared with `stpipe plan`, which shows what a run
/// with them would reuse).
#[derive(Debug, Clone, clap::Args)]
pub struct RunFlags {
    /// Run directory: resolved pipeline, metrics log, checkpoints, summary
    /// [default: runs/<pipeline name>].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Stop every stage after this many optimizer steps (smoke runs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_steps: Option<u64>,
    /// Read at most this many rows from every data source (smoke runs).
    #[arg(long, value_name = "N", value_parser = parse_limit)]
    pub limit: Option<usize>,
    /// Skip (and count) data rows that cannot be read instead of stopping.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// `--limit N`: at least one row (a source with none cannot train or
/// evaluate anything).
fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl RunFlags {
    /// The run options for pipeline `file`.
    pub fn options(&self, file: &std::path::Path, opts: &Options) -> RunOptions {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".to_string());
        RunOptions {
            run_dir: self
                .run_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(stem)),
            search: opts.models.clone(),
            max_steps: self.max_steps,
            limit: self.limit,
            skip_bad_rows: self.skip_bad_rows,
            progress: true,
        }
    }
}

pub fn run(
    args: &Args,
    opts: &Options,
    overrides: &[crate::check::overrides::Override],
) -> ExitCode {
    if !args.sweep.is_empty() {
        return super::sweep::run(args, opts, overrides);
    }
    let run_opts = RunOptions {
        progress: !args.quiet,
        ..args.run.options(&args.file, opts)
    };
    let report = run_once(args, opts, overrides, &run_opts);
    let written = write_reports(&report, &args.report, None);
    ExitCode::from(with_reports(report.exit_code, written))
}

/// Check, plan and run the pipeline once with `run_opts` (and, for a
/// sweep point, its save suffix in `opts`): what happened, as a report.
/// Everything a person needs is printed on stderr on the way.
pub(super) fn run_once(
    args: &Args,
    opts: &Options,
    overrides: &[crate::check::overrides::Override],
    run_opts: &RunOptions,
) -> RunReport {
    let started = std::time::Instant::now();
    let opts = Options {
        run_dir: Some(run_opts.run_dir.clone()),
        skip_bad_rows: run_opts.skip_bad_rows,
        ..opts.clone()
    };
    let mut report = RunReport {
        pipeline: args.file.display().to_string(),
        run_dir: run_opts.run_dir.display().to_string(),
        status: RunStatus::Invalid,
        exit_code: 1,
        seconds: 0.0,
        diagnostics: Vec::new(),
        diagnostics_text: String::new(),
        summary: RunSummary::default(),
    };
    let (diags, checked) = super::check_and_plan_reporting(&args.file, &opts, overrides);
    if let Some(d) = &diags {
        report.diagnostics = d.to_json();
        report.diagnostics_text = d.to_plain();
    }
    let (pipeline, plan) = match checked {
        Ok(r) => r,
        Err(code) => {
            report.exit_code = code_of(code);
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    let source = diags.map(|d| d.source.to_string()).unwrap_or_default();
    let (summary, result) = run_pipeline(&pipeline, &plan, run_opts, &source);
    // The picture of the run, whatever it reached; not for a run directory
    // another run holds (its picture is that run's to draw).
    let locked = matches!(
        result,
        Err(crate::runtime::train::error::RunError::Locked { .. })
    );
    if !locked {
        if let Err(e) = crate::report::curves::write(&run_opts.run_dir) {
            eprintln!("warning: no curves.png: {e}");
        }
    }
    report.summary = summary;
    report.seconds = started.elapsed().as_secs_f64();
    report.status = match result {
        Err(e) => {
            let interrupted = matches!(
                e,
                crate::runtime::train::error::RunError::Interrupted { .. }
            );
            eprintln!(
                "{}",
                pipeline.redact(&format!("{:?}", miette::Report::new(e)))
            );
            if interrupted {
                RunStatus::Interrupted
            } else {
                RunStatus::Error
            }
        }
        Ok(()) => {
            print_summary(&pipeline, run_opts, &report.summary);
            if report.summary.failed_expectations().is_empty() {
                RunStatus::Passed
            } else {
                eprintln!("error: an expectation did not hold");
                RunStatus::ExpectationFailed
            }
        }
    };
    report.exit_code = report.status.exit_code();
    report
}

/// The number of an exit code made by `check_and_plan` (1 or 2).
fn code_of(code: ExitCode) -> u8 {
    if code == ExitCode::from(2) {
        2
    } else {
        1
    }
}

/// The exit code once the reports are written: a report that could not be
/// written fails a run that otherwise passed (CI would miss it).
pub(super) fn with_reports(code: u8, written: bool) -> u8 {
    if code == 0 && !written {
        1
    } else {
        code
    }
}

/// Write every `--report` file; `point` (a sweep point's name) goes into
/// the file names: `junit.xml` -> `junit@lr=2e-5.xml`. Whether all were
/// written.
pub(super) fn write_reports(
    report: &RunReport,
    targets: &[ReportTarget],
    point: Option<&str>,
) -> bool {
    let mut all = true;
    for t in targets {
        let mut t = t.clone();
        if let Some(point) = point {
            let stem = t.path.file_stem().unwrap_or_default().to_string_lossy();
            let ext = t.path.extension().unwrap_or_default().to_string_lossy();
            t.path.set_file_name(format!("{stem}@{point}.{ext}"));
        }
        match report.write(&t) {
            Ok(()) => eprintln!("  report {}", t.path.display()),
            Err(e) => {
                eprintln!(
                    "error: cannot write the report {}: {e}\n  help: choose a --report path in a writable directory",
                    t.path.display()
                );
                all = false;
            }
        }
    }
    all
}

fn print_summary(pipeline: &crate::check::Pipeline, run_opts: &RunOptions, summary: &RunSummary) {
    eprintln!("run directory: {}", run_opts.run_dir.display());
    if !summary.reused.is_empty() {
        eprintln!(
            "  reused {} step(s) recorded by earlier runs (`stpipe plan` lists them)",
            summary.reused.len()
        );
    }
    for (name, metric, v) in &summary.final_metrics {
        let before = summary
            .baseline(name, metric)
            .map(|b| format!(" (before training {b:.4})"))
            .unwrap_or_default();
        eprintln!("  {name}.{metric} = {v:.4}{before}");
    }
    for p in &summary.saved {
        eprintln!("  saved {}", pipeline.redact(&p.display().to_string()));
    }
    for e in &summary.expectations {
        let mark = if e.passed { "ok  " } else { "FAIL" };
        eprintln!(
            "  {mark} expect {}.{} {} {} (got {:.4})",
            e.evaluator, e.metric, e.op, e.threshold, e.value
        );
    }
}
