use clap::Parser;

fn main() -> miette::Result<()> {
    stpipe::runtime::init_threads();
    let cli = stpipe::cli::Cli::parse();
    stpipe::cli::run(cli)
}
