//! The command line: `stpipe <command>`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod encode;

/// Train sentence-embedding models from declarative pipeline files.
#[derive(Debug, Parser)]
#[command(name = "stpipe", version, about)]
pub struct Cli {
    /// A directory to search for models before STPIPE_MODEL_PATH and the
    /// Hugging Face cache (repeatable).
    #[arg(long = "model-path", global = true, value_name = "DIR")]
    pub model_path: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode sentences (one per line) into embeddings.
    Encode(encode::EncodeArgs),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> miette::Result<()> {
    let search = crate::hub::ModelSearch::from_env().with_paths_first(&cli.model_path);
    match cli.command {
        Command::Encode(args) => encode::run(args, &search),
    }
}
