//! `stpipe run FILE`: check, plan and execute a pipeline.
//!
//! Exit codes: 0 when the run finished and every `expect` held; 1 when the
//! pipeline is invalid or the run failed; 2 on usage errors; 3 when the run
//! finished but an `expect` did not hold.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::check::Options;
use crate::runtime::train::run::{run as run_pipeline, RunOptions};

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
    let run_opts = RunOptions {
        progress: !args.quiet,
        ..args.run.options(&args.file, opts)
    };
    let opts = Options {
        run_dir: Some(run_opts.run_dir.clone()),
        skip_bad_rows: run_opts.skip_bad_rows,
        ..opts.clone()
    };
    let (pipeline, plan) = match super::check_and_plan(&args.file, &opts, overrides) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let summary = match run_pipeline(&pipeline, &plan, &run_opts) {
        Ok(s) => s,
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
                return ExitCode::from(130);
            }
            return ExitCode::from(1);
        }
    };
    eprintln!("run directory: {}", run_opts.run_dir.display());
    if !summary.reused.is_empty() {
        eprintln!(
            "  reused {} step(s) recorded by earlier runs (`stpipe plan` lists them)",
            summary.reused.len()
        );
    }
    for (name, metric, v) in &summary.final_metrics {
        let before = summary
            .baseline_metrics
            .iter()
            .find(|(n, m, _)| n == name && m == metric)
            .map(|(_, _, b)| format!(" (before training {b:.4})"))
            .unwrap_or_default();
        eprintln!("  {name}.{metric} = {v:.4}{before}");
    }
    for p in &summary.saved {
        eprintln!("  saved {}", pipeline.redact(&p.display().to_string()));
    }
    let mut failed = false;
    for e in &summary.expectations {
        let mark = if e.passed { "ok  " } else { "FAIL" };
        eprintln!(
            "  {mark} expect {}.{} {} {} (got {:.4})",
            e.evaluator, e.metric, e.op, e.threshold, e.value
        );
        failed |= !e.passed;
    }
    if failed {
        eprintln!("error: an expectation did not hold");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}
