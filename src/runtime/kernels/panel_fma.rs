//! The product of a panel of 16 outputs where the CPU has AVX2 and FMA but
//! not AVX-512: a microkernel of our own over weights packed once
//! ([`super::Panels`]), instead of `gemm`'s.
//!
//! `gemm`'s AVX2 microkernel spans 16 outputs by 6 tokens, as this one
//! does, but it packs the weight again on every call, and its per-call
//! set-up is paid for every panel; with panels 16 wide handed to it, the
//! packing went but the calls cost more than it had (measured on a Zen 4
//! built without AVX-512: 2.5-5% slower). On a Zen 3 (AVX2 only), this
//! kernel on the layer shapes of MiniLM (480 tokens, 2 threads) ran at
//! 175-195 GFLOP/s against 166-187 for `gemm` on the same products.
//!
//! Each value is summed by one chain of fused multiply-adds in the order
//! of the inputs, starting from what `dst` held (the bias): its bits do
//! not depend on the batch, the other tokens, the number of threads or
//! where the tokens fall in the kernel's groups of 6.

/// Outputs per panel: two AVX2 registers of 8.
pub(super) const WIDTH: usize = 16;

/// Tokens per call of the microkernel: 6 x 2 accumulators, 2 registers
/// for the weights and one for the broadcast input take 15 of the 16
/// AVX2 registers.
const TOKENS: usize = 6;

/// Whether this kernel can run here.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst[t][0..w] += x[t] @ panel` for the `n` tokens of `x` (rows `inp`
/// apart), with `panel` one panel of `w <= 16` outputs (`[inp][w]`) and
/// the rows of `dst` `ld` apart.
///
/// # Safety
/// [`available`] is true; `dst` points at `n` rows of at least `w`
/// values, `ld` apart, that nothing else reads or writes meanwhile.
pub(super) unsafe fn product(
    panel: &[f32],
    w: usize,
    x: &[f32],
    inp: usize,
    n: usize,
    dst: *mut f32,
    ld: usize,
) {
    assert!(
        (1..=WIDTH).contains(&w) && panel.len() == w * inp && x.len() >= n * inp,
        "panel kernel: {n} tokens of {inp} against a panel of {} values, {w} wide",
        panel.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if w == WIDTH {
            x86::tokens(panel.as_ptr(), x.as_ptr(), inp, n, dst, ld);
            return;
        }
        // A narrower (last) panel runs as a whole one: padded with zero
        // weights, into a tile of 16 values per token of which `w` are
        // copied in and out. The lanes do not mix, so the `w` values get
        // the bits they would get in a whole panel.
        let mut padded = vec![0f32; inp * WIDTH];
        for (to, from) in padded.chunks_exact_mut(WIDTH).zip(panel.chunks_exact(w)) {
            to[..w].copy_from_slice(from);
        }
        let mut tile = [0f32; WIDTH * TOKENS];
        for t0 in (0..n).step_by(TOKENS) {
            let m = TOKENS.min(n - t0);
            for i in 0..m {
                let row = std::slice::from_raw_parts(dst.add((t0 + i) * ld), w);
                tile[i * WIDTH..i * WIDTH + w].copy_from_slice(row);
            }
            x86::tokens(
                padded.as_ptr(),
                x.as_ptr().add(t0 * inp),
                inp,
                m,
                tile.as_mut_ptr(),
                WIDTH,
            );
            for i in 0..m {
                let row = std::slice::from_raw_parts_mut(dst.add((t0 + i) * ld), w);
                row.copy_from_slice(&tile[i * WIDTH..i * WIDTH + w]);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (panel, x, dst, ld);
        unreachable!("panel kernel: no AVX2 on this architecture");
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{TOKENS, WIDTH};

    /// `n` tokens through the microkernel, 6 at a time, then the rest.
    ///
    /// # Safety
    /// AVX2 and FMA; `panel` holds `inp * 16` values, `x` `n` rows of
    /// `inp`, and `dst` `n` rows of 16 (`ld` apart) that only this call
    /// touches.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tokens(
        panel: *const f32,
        x: *const f32,
        inp: usize,
        n: usize,
        dst: *mut f32,
        ld: usize,
    ) {
        let mut t = 0;
        while t + TOKENS <= n {
            block::<TOKENS>(panel, x.add(t * inp), inp, dst.add(t * ld), ld);
            t += TOKENS;
        }
        let (x, dst) = (x.add(t * inp), dst.add(t * ld));
        match n - t {
            1 => block::<1>(panel, x, inp, dst, ld),
            2 => block::<2>(panel, x, inp, dst, ld),
            3 => block::<3>(panel, x, inp, dst, ld),
            4 => block::<4>(panel, x, inp, dst, ld),
            5 => block::<5>(panel, x, inp, dst, ld),
            _ => {}
        }
    }

    /// `T` tokens by 16 outputs: the accumulators start from `dst`, take
    /// one fused multiply-add per input, in order, and go back to `dst`.
    ///
    /// # Safety
    /// As [`tokens`], for `T` tokens.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block<const T: usize>(
        panel: *const f32,
        x: *const f32,
        inp: usize,
        dst: *mut f32,
        ld: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; T];
        for (i, acc) in acc.iter_mut().enumerate() {
            acc[0] = _mm256_loadu_ps(dst.add(i * ld));
            acc[1] = _mm256_loadu_ps(dst.add(i * ld + 8));
        }
        for k in 0..inp {
            let w0 = _mm256_loadu_ps(panel.add(k * WIDTH));
            let w1 = _mm256_loadu_ps(panel.add(k * WIDTH + 8));
            for (i, acc) in acc.iter_mut().enumerate() {
                let v = _mm256_broadcast_ss(&*x.add(i * inp + k));
                acc[0] = _mm256_fmadd_ps(v, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(v, w1, acc[1]);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(dst.add(i * ld), acc[0]);
            _mm256_storeu_ps(dst.add(i * ld + 8), acc[1]);
        }
    }
}
