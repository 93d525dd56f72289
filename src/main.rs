use clap::Parser;

fn main() -> miette::Result<()> {
    let cli = stpipe::cli::Cli::parse();
    stpipe::cli::run(cli)
}
