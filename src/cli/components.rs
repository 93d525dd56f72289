//! `stpipe components`: the registry's reference, in Markdown.

use std::process::ExitCode;

pub fn run() -> ExitCode {
    print!("{}", crate::registry::reference_markdown());
    ExitCode::SUCCESS
}
