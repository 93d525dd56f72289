//! `stpipe lsp`: the language server, over stdin and stdout.

use std::process::ExitCode;

use crate::check::Options;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Talk over stdin and stdout. That is the only transport; the flag is
    /// accepted because editors' clients (VS Code's) pass it.
    #[arg(long)]
    pub stdio: bool,
}

/// Exit status 0 after `shutdown` then `exit`, 1 otherwise (as the
/// protocol asks of an `exit` without `shutdown`).
pub fn run(_args: &Args, opts: &Options) -> ExitCode {
    match crate::lsp::run_stdio(opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("stpipe lsp: {e}");
            ExitCode::FAILURE
        }
    }
}
