//! `stpipe plan FILE`: the execution graph of a pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::check::Options;

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
    let (_, plan) = match super::check_and_plan(&args.file, opts) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match args.format {
        PlanFormat::Text => print!("{}", plan.to_text()),
        PlanFormat::Dot => print!("{}", plan.to_dot()),
    }
    ExitCode::SUCCESS
}
