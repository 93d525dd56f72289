//! `stpipe report RUN_DIR`: the self-contained `report.html` of a run.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run directory of a `stpipe run` (`runs/<pipeline>` by default).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Where to write the page [default: RUN_DIR/report.html].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    match crate::report::html::write(&args.run_dir, args.output.as_deref()) {
        Ok(path) => {
            eprintln!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: cannot write the report of {}: {e}",
                args.run_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
