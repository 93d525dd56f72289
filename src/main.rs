fn main() -> std::process::ExitCode {
    stpipe::cli::main()
}
