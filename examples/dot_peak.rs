//! The arithmetic peak of one core for f32 fused multiply-adds and, where
//! the CPU has AVX512-BF16, for bf16 dot products accumulated in f32
//! (`vdpbf16ps`): the ceiling a bf16 matmul kernel could reach against the
//! f32 one, measured before anyone builds such a kernel (issue 10 allows
//! a bf16 stage setting only where it is measured faster).
//!
//! Both loops keep 12 independent accumulators in registers and touch no
//! memory, so they measure the execution units alone; a real kernel also
//! loads and packs its operands and reaches less.
//!
//!   cargo run --release --example dot_peak [MILLIONS_OF_ITERATIONS]

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Accumulators kept in flight: enough to cover the latency of an
    /// FMA (4 cycles on two units) several times over.
    const ACC: usize = 12;

    /// FLOPs of one pass of [`f32_fma`]: per accumulator 16 lanes, 2 each.
    pub const F32_FLOPS: f64 = (ACC * 16 * 2) as f64;
    /// FLOPs of one pass of [`bf16_dot`]: per accumulator 16 lanes, each a
    /// product of two pairs and their sums.
    pub const BF16_FLOPS: f64 = (ACC * 16 * 4) as f64;

    /// `*acc = $step` on each of [`ACC`] accumulators `iters` times, then
    /// the sum of every lane. A macro, not a function taking a closure, so
    /// that the loop is compiled inside the caller's target features.
    macro_rules! accumulate {
        ($iters:expr, |$acc:ident| $step:expr) => {{
            let mut accs = [_mm512_setzero_ps(); ACC];
            for _ in 0..$iters {
                for $acc in accs.iter_mut() {
                    *$acc = $step;
                }
            }
            let sum = accs
                .iter()
                .fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x));
            _mm512_reduce_add_ps(sum)
        }};
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32_fma(iters: usize, seed: f32) -> f32 {
        let a = _mm512_set1_ps(seed);
        let b = _mm512_set1_ps(1.0001);
        accumulate!(iters, |acc| _mm512_fmadd_ps(a, b, *acc))
    }

    /// # Safety
    /// The CPU must have AVX-512F and AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn bf16_dot(iters: usize, seed: f32) -> f32 {
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(seed), _mm512_set1_ps(seed * 0.5));
        let b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0001), _mm512_set1_ps(0.9999));
        accumulate!(iters, |acc| _mm512_dpbf16_ps(*acc, a, b))
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::time::Instant;

    let millions: usize = match std::env::args().nth(1) {
        None => 50,
        Some(a) => match a.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("dot_peak: `{a}` is not a count (millions of iterations)");
                std::process::exit(2);
            }
        },
    };
    let iters = millions * 1_000_000;
    if !std::arch::is_x86_feature_detected!("avx512f") {
        println!("this CPU has no AVX-512F: nothing to compare");
        return;
    }
    let bf16 = std::arch::is_x86_feature_detected!("avx512bf16");
    // The result is printed so that the loops cannot be optimised away.
    let timed = |f: &dyn Fn() -> f32, flops: f64| {
        let t = Instant::now();
        let r = f();
        (iters as f64 * flops / t.elapsed().as_secs_f64() / 1e9, r)
    };
    for round in 1..=3 {
        let seed = 1.0 + round as f32;
        // SAFETY: AVX-512F was detected above.
        let (f32_gf, r) = timed(&|| unsafe { x86::f32_fma(iters, seed) }, x86::F32_FLOPS);
        print!("round {round}, one core: f32 FMA {f32_gf:.1} GFLOP/s");
        if bf16 {
            // SAFETY: AVX512-BF16 was detected above.
            let (bf_gf, r2) = timed(&|| unsafe { x86::bf16_dot(iters, seed) }, x86::BF16_FLOPS);
            print!(
                ", bf16 dot {bf_gf:.1} GFLOP/s ({:.2}x) [{r:e} {r2:e}]",
                bf_gf / f32_gf
            );
        } else {
            print!(" [{r:e}] (no AVX512-BF16 on this CPU)");
        }
        println!();
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("dot_peak measures x86-64 instructions only");
}
