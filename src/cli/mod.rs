//! The `stpipe` command line.

mod annotations;
mod check;
mod components;
pub mod encode;
mod fmt;
mod lsp;
mod plan;
mod report;
mod run;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::check::{Options, DATA_ENV};

/// Train sentence-embedding models from declarative `.stp` pipelines.
#[derive(Debug, Parser)]
#[command(name = "stpipe", version, about)]
pub struct Cli {
    /// Data root: sets STPIPE_DATA for `${STPIPE_DATA}` in pipelines (a
    /// relative DIR starts at the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// A directory searched for models before STPIPE_MODEL_PATH (repeatable).
    #[arg(long, global = true, value_name = "DIR")]
    pub model_path: Vec<PathBuf>,
    /// Give a `let` binding of the pipeline another value, checked like
    /// the file itself (repeatable; `check`, `plan` and `run`).
    #[arg(long = "set", global = true, value_name = "NAME=VALUE", value_parser = crate::check::overrides::parse_override)]
    pub set: Vec<crate::check::overrides::Override>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipelines and report every problem.
    Check(check::Args),
    /// Print the execution plan of a pipeline.
    Plan(plan::Args),
    /// Print the reference of every component (Markdown).
    Components,
    /// Encode sentences (one per line) into embeddings.
    Encode(encode::EncodeArgs),
    /// Format pipeline files in the canonical layout, in place (`--check`:
    /// print a diff and exit 1 if any would change).
    Fmt(fmt::Args),
    /// Language server over stdio (for editors).
    Lsp(lsp::Args),
    /// Train: execute a pipeline end to end.
    Run(run::Args),
    /// Write the self-contained report.html of a run directory.
    Report(report::Args),
}

/// Output formats of diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagFormat {
    /// Human-readable, with source excerpts.
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow commands (`::error file=...,line=...::`),
    /// one per diagnostic, on stdout.
    Github,
    /// One SARIF 2.1.0 log on stdout.
    Sarif,
}

impl Cli {
    /// Checker options from the environment and the global flags.
    pub fn options(&self) -> Options {
        let mut o = Options::from_env();
        if let Some(d) = &self.data_root {
            // A path on the command line starts where the command runs, not
            // at the pipeline file's directory (where `${STPIPE_DATA}` lands).
            let d = std::path::absolute(d).unwrap_or_else(|_| d.clone());
            o.env.insert(DATA_ENV.to_string(), d.display().to_string());
        }
        o.models = o.models.with_paths_first(&self.model_path);
        o
    }
}

/// Run the command line; the exit code follows `stpipe check`'s contract:
/// 0 valid, 1 invalid pipeline, 2 usage error.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    use crate::runtime::process::{self, Workload};
    crate::runtime::signals::default_sigpipe();
    if matches!(cli.command, Command::Run(_)) {
        crate::runtime::signals::install_stop_handlers();
    }
    process::init(match cli.command {
        Command::Run(_) => Workload::Training,
        _ => Workload::Inference,
    });
    // A bad setting in the environment stops every command before it
    // starts, not at a run's first evaluation.
    if let Err(e) = crate::runtime::encoder::batch_token_budget(true) {
        return report_result(Err(miette::miette!(
            help = "unset it, or give the most padded token rows one encoding forward may hold",
            "{e}"
        )));
    }
    let opts = cli.options();
    match cli.command {
        Command::Check(a) => check::run(&a, &opts, &cli.set),
        Command::Plan(a) => plan::run(&a, &opts, &cli.set),
        Command::Components => components::run(),
        Command::Fmt(a) => fmt::run(&a),
        Command::Lsp(a) => lsp::run(&a, &opts),
        Command::Run(a) => run::run(&a, &opts, &cli.set),
        Command::Report(a) => report::run(&a),
        Command::Encode(a) => report_result(encode::run(a, &opts.models)),
    }
}

/// Check a pipeline file and build its plan. Diagnostics (warnings too) go
/// to stderr; on failure the exit code to return: 2 when the file cannot be
/// read, 1 when the pipeline is invalid or cannot be planned.
pub(crate) fn check_and_plan(
    file: &std::path::Path,
    opts: &Options,
    overrides: &[crate::check::overrides::Override],
) -> Result<(crate::check::Pipeline, crate::plan::Plan), ExitCode> {
    check_and_plan_reporting(file, opts, overrides).1
}

/// [`check_and_plan`], also returning the checker's report (the source it
/// checked, after `--set`, and every diagnostic) when the file was read.
pub(crate) fn check_and_plan_reporting(
    file: &std::path::Path,
    opts: &Options,
    overrides: &[crate::check::overrides::Override],
) -> (
    Option<crate::diag::Report>,
    Result<(crate::check::Pipeline, crate::plan::Plan), ExitCode>,
) {
    let (report, pipeline) = match crate::check::check_file_with(file, opts, overrides) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return (None, Err(ExitCode::from(2)));
        }
    };
    if !report.diags.is_empty() {
        print_human(&report);
    }
    let Some(pipeline) = pipeline else {
        return (Some(report), Err(ExitCode::from(1)));
    };
    match crate::plan::Plan::build(&pipeline) {
        Ok(plan) => (Some(report), Ok((pipeline, plan))),
        Err(e) => {
            eprintln!("error: {e}");
            (Some(report), Err(ExitCode::from(1)))
        }
    }
}

/// Print a failed command's diagnostic on stderr: exit code 1.
pub(crate) fn report_result(r: miette::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:?}");
            ExitCode::FAILURE
        }
    }
}

/// Diagnostics printed for humans; the rest are counted (`--format json`
/// lists them all).
const MAX_SHOWN: usize = 100;

/// Print a report's diagnostics for humans, on stderr: the first
/// [`MAX_SHOWN`], then a count of the rest.
pub(crate) fn print_human(report: &crate::diag::Report) {
    let handler = miette::GraphicalReportHandler::new_themed(
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        },
    );
    let all = report.miette();
    for d in all.iter().take(MAX_SHOWN) {
        let mut s = String::new();
        if handler.render_report(&mut s, d).is_ok() {
            eprintln!("{s}");
        } else {
            eprintln!("{}", d.diag.message);
        }
    }
    if all.len() > MAX_SHOWN {
        let rest = &report.diags[MAX_SHOWN..];
        let errors = rest.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "... and {} more ({errors} error(s), {} warning(s)); `stpipe check --format json` lists them all",
            rest.len(),
            rest.len() - errors
        );
    }
}
