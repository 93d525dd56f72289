//! Signals during `stpipe run`.
//!
//! * SIGINT (Ctrl-C) and SIGTERM ask the run to stop: the current step
//!   finishes, a checkpoint is written, the run says where it stopped and
//!   exits 130 ([`requested`] is polled between steps). A second signal
//!   stops the process at once.
//! * SIGPIPE gets its default action back (Rust ignores it, which turns a
//!   closed pipe into a panic at the next `eprintln!`): `stpipe check ... |
//!   head -1` ends quietly.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether a stop was asked for (SIGINT or SIGTERM).
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Ask for a stop, as a signal would (tests and embedders).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

#[cfg(unix)]
extern "C" fn on_signal(_sig: libc::c_int) {
    const FIRST: &[u8] =
        b"\nstpipe: stopping after this step (a checkpoint will be written); signal again to stop at once\n";
    const SECOND: &[u8] = b"\nstpipe: stopped at once\n";
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: write(2) and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(2, SECOND.as_ptr().cast(), SECOND.len());
            libc::_exit(130);
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::write(2, FIRST.as_ptr().cast(), FIRST.len());
    }
}

/// Install the SIGINT and SIGTERM handlers (for `stpipe run`).
pub fn install_stop_handlers() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic and calls
    // async-signal-safe functions; sigaction is given a zeroed, then
    // filled, struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Give SIGPIPE its default action (the process ends quietly when the
/// reader of its output goes away).
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal's disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
