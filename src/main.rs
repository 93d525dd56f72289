/// Allocation failures end the process with a message (see `alloc_guard`).
#[global_allocator]
static ALLOC: stpipe::alloc_guard::Guard = stpipe::alloc_guard::Guard;

fn main() -> std::process::ExitCode {
    stpipe::cli::main()
}
