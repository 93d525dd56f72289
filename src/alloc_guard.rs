//! An allocation that fails ends the process with a message, not an abort
//! with a backtrace (exit 134).
//!
//! Rust aborts when the allocator returns null, and stable Rust has no
//! hook for it; the binary's global allocator is therefore the system one
//! behind [`Guard`], which, when an allocation fails, writes what failed
//! and what to do to stderr (without allocating) and exits 1. The checker
//! refuses pipelines whose estimate does not fit (`check/memory.rs`); this
//! catches what no estimate foresees (a huge `--batch-size` in `encode`
//! where the token limit of a forward is lifted, `STPIPE_BATCH_TOKENS=0`,
//! or off the CPU; a limit set by `ulimit -v`).

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, with failures reported.
pub struct Guard;

fn fail(size: usize) -> ! {
    // No allocation from here on: the digits go into a stack buffer.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = size;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let parts: [&[u8]; 3] = [
        b"\nerror: out of memory: an allocation of ",
        &digits[i..],
        b" bytes failed\n  help: lower batch_size (or --batch-size) or max_seq_length, narrow a Dense layer, or use a smaller model; `stpipe check` estimates what a pipeline needs\n",
    ];
    for p in parts {
        write_stderr(p);
    }
    exit_now()
}

fn write_stderr(bytes: &[u8]) {
    #[cfg(unix)]
    // SAFETY: write(2) on fd 2 with a valid buffer.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
    #[cfg(not(unix))]
    let _ = bytes;
}

fn exit_now() -> ! {
    #[cfg(unix)]
    // SAFETY: _exit(2) ends the process without running anything else.
    unsafe {
        libc::_exit(1)
    }
    #[cfg(not(unix))]
    std::process::abort()
}

// SAFETY: every call is forwarded to the system allocator unchanged; only
// a null result (a failure) is acted on, and then the process ends.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if p.is_null() {
            fail(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            fail(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            fail(new_size);
        }
        p
    }
}
