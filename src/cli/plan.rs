//! `stpipe plan FILE`: the execution graph of a pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::check::{check_file, Options};

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
}

pub fn run(args: &Args, opts: &Options) -> ExitCode {
    let (report, pipeline) = match check_file(&args.file, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let Some(pipeline) = pipeline else {
        super::print_human(&report);
        return ExitCode::from(1);
    };
    let plan = match crate::plan::Plan::build(&pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match args.format {
        PlanFormat::Text => print!("{}", plan.to_text()),
        PlanFormat::Dot => print!("{}", plan.to_dot()),
    }
    ExitCode::SUCCESS
}
