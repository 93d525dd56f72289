//! The floating-point environment of every thread that computes: subnormal
//! ("denormal") floats are flushed to zero and read as zero.
//!
//! Why: a subnormal operand or result makes an Intel core take a microcode
//! assist that costs on the order of a hundred cycles per instruction. The
//! backward pass produces them by the million (softmax probabilities of
//! masked and far-off tokens, the tails of GELU's derivative, products of
//! small gradients), and training on an Intel Xeon ran 15x slower than
//! with flush-to-zero set (docs/performance.md). AMD's Zen cores handle
//! most subnormals at full speed, which is why it never showed there.
//!
//! Two defences, each enough on its own for the hot paths:
//!
//! * the kernels of `runtime::kernels` and the optimizer never emit a
//!   subnormal (their `exp` returns exactly 0 below `e^-87`, and values
//!   below the smallest normal float are written as 0 by [`flush`]), so a
//!   training step does not produce them even where the flags cannot be
//!   set (`tests/denormals.rs` checks every tensor of a step);
//! * this module sets FTZ (flush-to-zero) and DAZ (denormals-are-zero) in
//!   MXCSR on x86-64, and FZ in FPCR on AArch64, on the calling thread and
//!   on every thread of the pools that run tensor work: rayon's global pool
//!   (which gemm and candle's CPU ops use), candle's private rayon pool and
//!   candle's barrier pool. The global pool is built here with a start
//!   handler, so its threads have the flags from the moment they start;
//!   on Linux a new thread also inherits the flags of the thread that
//!   creates it.
//!
//! The effect on results is nil in practice: values below 1.2e-38 become 0.
//! PyTorch offers the same switch as `torch.set_flush_denormal(True)`.

use std::sync::Once;

/// `x`, or 0 when `x` is subnormal. Kernels and the optimizer pass their
/// outputs through it, so that they never hand a subnormal on, whatever
/// the flags of the thread. Branch-free (it vectorises to a compare and a
/// blend).
#[inline(always)]
pub fn flush(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// Set flush-to-zero and denormals-are-zero on the calling thread.
pub fn set_on_this_thread() {
    arch::set();
}

/// Whether the calling thread flushes subnormals (FTZ and DAZ both set on
/// x86-64; FZ on AArch64). `true` on architectures without the switch is
/// never claimed: they report `false`.
pub fn enabled_on_this_thread() -> bool {
    arch::enabled()
}

static POOLS: Once = Once::new();

/// Set the flags on the calling thread and, the first time, on every thread
/// of the compute pools (building rayon's global pool if nobody has yet).
/// Cheap after the first call; call it at the entry of anything that
/// computes (`stpipe run`, `encode`), from whichever thread does.
pub fn ensure() {
    set_on_this_thread();
    POOLS.call_once(|| {
        // Threads created from now on start with the flags.
        let built = rayon::ThreadPoolBuilder::new()
            .start_handler(|_| set_on_this_thread())
            .build_global()
            .is_ok();
        if !built {
            // Someone built it first: set the flags on its threads now.
            rayon::broadcast(|_| set_on_this_thread());
        }
        candle_core::utils::with_threadpool(|| rayon::broadcast(|_| set_on_this_thread()));
        candle_core::utils::barrier_pool().execute(|_| set_on_this_thread());
    });
}

/// Whether every thread of every compute pool (and the calling thread)
/// flushes subnormals; for tests and `stpipe run`'s header.
pub fn enabled_everywhere() -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    let all = AtomicBool::new(enabled_on_this_thread());
    let check = || {
        if !enabled_on_this_thread() {
            all.store(false, Ordering::Relaxed);
        }
    };
    rayon::broadcast(|_| check());
    candle_core::utils::with_threadpool(|| rayon::broadcast(|_| check()));
    candle_core::utils::barrier_pool().execute(|_| check());
    all.load(Ordering::Relaxed)
}

#[cfg(target_arch = "x86_64")]
mod arch {
    /// MXCSR bit 15: flush results that would be subnormal to zero.
    const FTZ: u32 = 1 << 15;
    /// MXCSR bit 6: read subnormal operands as zero.
    const DAZ: u32 = 1 << 6;

    fn read() -> u32 {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR register to the given
        // address, which points at a live, aligned u32. SSE is part of the
        // x86-64 baseline.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr
    }

    pub(super) fn set() {
        let csr = read() | FTZ | DAZ;
        // SAFETY: ldmxcsr loads MXCSR from a live u32; only the FTZ and DAZ
        // control bits change (rounding mode and exception masks are kept),
        // and every x86-64 CPU with SSE2 supports DAZ.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }

    pub(super) fn enabled() -> bool {
        read() & (FTZ | DAZ) == (FTZ | DAZ)
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// FPCR bit 24: flush subnormal inputs and results to zero.
    const FZ: u64 = 1 << 24;

    fn read() -> u64 {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
        }
        fpcr
    }

    pub(super) fn set() {
        let fpcr = read() | FZ;
        // SAFETY: only the FZ control bit changes.
        unsafe {
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack, preserves_flags));
        }
    }

    pub(super) fn enabled() -> bool {
        read() & FZ != 0
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub(super) fn set() {}

    pub(super) fn enabled() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_reach_every_pool_and_flush_subnormals() {
        ensure();
        assert!(enabled_on_this_thread());
        assert!(enabled_everywhere());
        // A product that would be subnormal comes out as 0 on a pool thread.
        let tiny = std::hint::black_box(1e-30f32);
        let results: Vec<f32> = {
            use rayon::prelude::*;
            (0..64)
                .into_par_iter()
                .map(|_| std::hint::black_box(tiny) * std::hint::black_box(1e-10f32))
                .collect()
        };
        assert!(results.iter().all(|&r| r == 0.0), "{results:?}");
        // A subnormal operand reads as 0.
        let sub = std::hint::black_box(f32::from_bits(1));
        assert_eq!(std::hint::black_box(sub) * 2.0, 0.0);
    }
}
