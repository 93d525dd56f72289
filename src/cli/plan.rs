//! `stpipe plan FILE`: the execution graph of a pipeline, and what a run
//! would do with each step given the run directory's recorded results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::check::Options;
use crate::runtime::train::cache;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: PlanFormat,
    /// The run options a run would use (they decide which recorded results
    /// it can reuse).
    #[command(flatten)]
    pub run: super::run::RunFlags,
}

pub fn run(
    args: &Args,
    opts: &Options,
    overrides: &[crate::check::overrides::Override],
) -> ExitCode {
    let run_opts = args.run.options(&args.file, opts);
    let opts = Options {
        run_dir: Some(run_opts.run_dir.clone()),
        skip_bad_rows: run_opts.skip_bad_rows,
        ..opts.clone()
    };
    let (_, plan) = match super::check_and_plan(&args.file, &opts, overrides) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match args.format {
        PlanFormat::Text => {
            let actions = cache::actions(&plan, &run_opts);
            let status =
                |n: petgraph::graph::NodeIndex| Some(actions[n.index()].describe().to_string());
            print!("{}", plan.to_text_with(&status));
            eprintln!(
                "run directory: {} (`runs`: executed by `stpipe run`; `reused`: its recorded result stands)",
                run_opts.run_dir.display()
            );
        }
        PlanFormat::Dot => print!("{}", plan.to_dot()),
    }
    ExitCode::SUCCESS
}
