//! Weights packed once into the layout a microkernel reads: once per
//! `encode` call in inference, and by the optimizer as it updates them for
//! the explicit training step's forward
//! ([`crate::runtime::step::weight_panels`], [`write_rows`]).
//!
//! A product `x @ w^T` handed to `gemm` makes it copy ("pack") the weight
//! into runs of a microkernel's rows, on every call: the weight is the
//! side whose rows the microkernel spans. In inference the weights do not
//! change for a whole `encode` call, so [`Panels::pack`] does that copy
//! once: panels of as many outputs as the microkernel's rows, each stored
//! input by input (`[in][width]`), which is the packed layout itself.
//! [`Panels::product`] then multiplies one panel at a time, by the
//! [`Kernel`] of this CPU.

use rayon::prelude::*;

use super::panel_fma;
use crate::runtime::step::matmul::SendPtr;

/// What multiplies the panels, and so their width.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kernel {
    /// `gemm`'s f32 microkernel, handed one panel of 64 outputs at a time
    /// with strides that tell it the panel needs no packing: where `gemm`
    /// runs its AVX-512 kernels (64 rows). Runs on any CPU (slowly
    /// elsewhere: `gemm` then packs what it is handed).
    Gemm,
    /// [`panel_fma`], panels of 16 outputs: where the CPU has AVX2 and
    /// FMA but not AVX-512.
    Fma,
}

impl Kernel {
    /// The kernel for this CPU, if the panels serve here: with AVX-512,
    /// `gemm`'s; with AVX2 and FMA, ours; else none (the products go to
    /// `gemm` whole, which packs what it needs).
    pub(crate) fn here() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(Kernel::Gemm);
        }
        panel_fma::available().then_some(Kernel::Fma)
    }

    /// The layout of panels packed here: this CPU's kernel's, `gemm`'s
    /// where none serves.
    pub(crate) fn layout() -> Kernel {
        Kernel::here().unwrap_or(Kernel::Gemm)
    }

    /// Outputs per panel.
    pub(crate) fn width(self) -> usize {
        match self {
            Kernel::Gemm => 64,
            Kernel::Fma => panel_fma::WIDTH,
        }
    }
}

/// Whether the panels serve inference here ([`Kernel::here`]).
pub(crate) fn available() -> bool {
    Kernel::here().is_some()
}

/// Whether the training step's forward reads panels the optimizer writes:
/// only with `gemm`'s AVX-512 kernels (the layout [`write_rows`] writes
/// with whole 16 x 16 tiles in registers).
pub(crate) fn trained_available() -> bool {
    Kernel::here() == Some(Kernel::Gemm)
}

/// Columns of `gemm`'s f32 microkernels (AVX-512 and AVX2 alike).
const NR: usize = 6;

/// What [`Panels::product`] runs on each finished run of outputs.
pub(crate) type Then = dyn Fn(&mut [f32]) + Sync;

/// Outputs per job of [`Panels::product`] (one panel of `gemm`'s, four of
/// [`panel_fma`]'s), and so per run that `then` is handed.
const GROUP: usize = 64;

/// A weight `w` `[out, in]` packed into panels of the kernel's width `W`
/// (the last one narrower when `out` is not a multiple): panel `p` holds
/// outputs `W p..` as `[in][W]`, panels one after the other.
pub(crate) struct Panels<'a> {
    data: &'a [f32],
    out: usize,
    inp: usize,
    kernel: Kernel,
}

impl<'a> Panels<'a> {
    /// `w` `[out, in]` (row-major) in the layout of this CPU's kernel, as
    /// values for [`Panels::view`].
    pub(crate) fn pack(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
        Self::pack_for(Kernel::layout(), w, out, inp)
    }

    /// [`Panels::pack`] for `kernel`.
    pub(crate) fn pack_for(kernel: Kernel, w: &[f32], out: usize, inp: usize) -> Vec<f32> {
        let mut data = vec![0f32; out * inp];
        write_rows(kernel, &mut data, 0, w, 0, out, inp);
        data
    }

    /// A weight of `out` outputs and `inp` inputs packed by
    /// [`Panels::pack`]; `None` when `data` does not hold exactly
    /// `out * inp` values.
    pub(crate) fn view(data: &'a [f32], out: usize, inp: usize) -> Option<Self> {
        Self::view_for(Kernel::layout(), data, out, inp)
    }

    /// [`Panels::view`] of values packed by [`Panels::pack_for`] `kernel`.
    /// `None` also where `kernel` cannot run here.
    pub(crate) fn view_for(
        kernel: Kernel,
        data: &'a [f32],
        out: usize,
        inp: usize,
    ) -> Option<Self> {
        let runs = kernel == Kernel::Gemm || panel_fma::available();
        (runs && data.len() == out * inp).then_some(Panels {
            data,
            out,
            inp,
            kernel,
        })
    }

    /// `dst [rows, out] += x [rows, in] @ w^T`, row-major, `dst`'s rows
    /// `ld` values apart (`ld >= out`; the columns between are untouched),
    /// `x` contiguous.
    ///
    /// Runs of 64 outputs are rayon jobs, each taking the tokens a run at a
    /// time ([`token_runs`]) through each of its panels. A value of `dst`
    /// is always summed by one call of the same shape, so the result does
    /// not depend on the number of threads:
    /// - [`Kernel::Gemm`]: one `gemm` call per panel and run of tokens.
    ///   `gemm` reads a panel unpacked only while a call spans at most its
    ///   packing threshold of microkernel columns (8 x 6 tokens by
    ///   default), so the runs are that long. From two tokens on, the
    ///   result has the bits of one `gemm` call over the whole product.
    /// - [`Kernel::Fma`]: [`panel_fma::product`], whose values are one
    ///   chain of fused multiply-adds each, from `dst`'s value, in the
    ///   order of the inputs.
    ///
    /// `then`, when given, runs on each finished run of a row's values (a
    /// job's outputs for one token) while they are still in the cache:
    /// GELU after the intermediate layer's product, instead of a pass of
    /// its own over the whole output.
    pub(crate) fn product(
        &self,
        dst: &mut [f32],
        ld: usize,
        x: &[f32],
        rows: usize,
        then: Option<&Then>,
    ) {
        let (out, inp) = (self.out, self.inp);
        assert!(
            ld >= out && (rows == 0 || dst.len() >= (rows - 1) * ld + out) && x.len() == rows * inp,
            "panels: {rows}x{inp} @ {inp}x{out} into {} values, rows {ld} apart",
            dst.len()
        );
        if rows == 0 || out == 0 {
            return;
        }
        let tokens = gemm::get_lhs_packing_threshold_single_thread().max(1) * NR;
        let dst_ptr = SendPtr(dst.as_mut_ptr());
        let width = self.kernel.width();
        let job = |g: usize| {
            let g0 = g * GROUP;
            let g1 = (g0 + GROUP).min(out);
            for (t0, n) in token_runs(rows, tokens) {
                for c0 in (g0..g1).step_by(width) {
                    let w = width.min(out - c0);
                    let panel = &self.data[c0 * inp..(c0 + w) * inp];
                    // SAFETY: the block of `dst` (rows t0..t0+n, columns
                    // c0..c0+w, rows `ld` apart) lies inside it (asserted
                    // above); jobs write disjoint blocks, and `dst` is
                    // borrowed mutably.
                    unsafe {
                        self.panel_product(
                            panel,
                            w,
                            &x[t0 * inp..],
                            n,
                            dst_ptr.get().add(t0 * ld + c0),
                            ld,
                        )
                    };
                }
                if let Some(then) = then {
                    for t in t0..t0 + n {
                        // SAFETY: this job's block of `dst` (see above),
                        // one token's run, which no other job touches.
                        let run = unsafe {
                            std::slice::from_raw_parts_mut(dst_ptr.get().add(t * ld + g0), g1 - g0)
                        };
                        then(run);
                    }
                }
            }
        };
        let jobs = out.div_ceil(GROUP);
        if rayon::current_num_threads() > 1 && 2 * rows * inp * out > 1 << 17 {
            (0..jobs).into_par_iter().for_each(job);
        } else {
            (0..jobs).for_each(job);
        }
    }

    /// `dst[t][0..w] += x[t] @ panel` for `n` tokens, by this kernel.
    ///
    /// # Safety
    /// `dst` points at `n` rows of at least `w` values, `ld` apart, that
    /// nothing else touches meanwhile; the kernel runs here (checked by
    /// [`Panels::view_for`]).
    unsafe fn panel_product(
        &self,
        panel: &[f32],
        w: usize,
        x: &[f32],
        n: usize,
        dst: *mut f32,
        ld: usize,
    ) {
        let inp = self.inp;
        assert!(panel.len() == w * inp && x.len() >= n * inp);
        match self.kernel {
            // The panel is `w x inp` values read with row stride 1 and
            // column stride `w`; the tokens `n x inp` (column stride
            // `inp`); `dst` column stride `ld`.
            Kernel::Gemm => gemm::gemm(
                w,
                n,
                inp,
                dst,
                ld as isize,
                1,
                true,
                panel.as_ptr(),
                w as isize,
                1,
                x.as_ptr(),
                inp as isize,
                1,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            ),
            Kernel::Fma => panel_fma::product(panel, w, x, inp, n, dst, ld),
        }
    }
}

/// Rows `first..first + n` of a weight `[out, in]` (`rows`: their `n * inp`
/// values) written into their places in `dst`, the panels (for `kernel`)
/// of the weight from row `dst_first` on (a multiple of 64, at most
/// `first`): what [`Panels::pack_for`] would put there. The optimizer
/// writes a weight's panels this way, a run of rows at a time, right
/// after updating them (`train::optim`), in [`Kernel::layout`].
///
/// Panics when the rows fall outside the weight or `dst` (a caller's bug).
pub(crate) fn write_rows(
    kernel: Kernel,
    dst: &mut [f32],
    dst_first: usize,
    rows: &[f32],
    first: usize,
    out: usize,
    inp: usize,
) {
    if inp == 0 {
        return;
    }
    let n = rows.len() / inp;
    let width = kernel.width();
    assert!(
        dst_first.is_multiple_of(GROUP) && dst_first <= first && first + n <= out,
        "panels: rows {first}..{} of {out} into panels from row {dst_first}",
        first + n
    );
    let mut r = first;
    while r < first + n {
        let p0 = r / width * width;
        let w = width.min(out - p0);
        let end = (p0 + w).min(first + n);
        let panel = &mut dst[(p0 - dst_first) * inp..(p0 - dst_first + w) * inp];
        let src = &rows[(r - first) * inp..(end - first) * inp];
        transpose_into(panel, w, r - p0, src, inp);
        r = end;
    }
}

/// `src` (rows of `inp` values) into columns `j0..` of `panel` (`[inp]
/// [width]`), through 16 x 16 tiles: every read and every write is a run
/// of up to 16 contiguous values. Whole tiles are turned in registers
/// where the CPU has AVX-512 (the optimizer writes every weight's panels
/// each step this way: the scalar tiles took 2% of an sts step).
fn transpose_into(panel: &mut [f32], width: usize, j0: usize, src: &[f32], inp: usize) {
    const T: usize = 16;
    let n = src.len() / inp;
    #[cfg(target_arch = "x86_64")]
    let whole = std::arch::is_x86_feature_detected!("avx512f");
    // Runs of 16 that start on a cache line are written past the caches
    // (the panels are read by the next step, long after): no line is
    // fetched only to be overwritten.
    #[cfg(target_arch = "x86_64")]
    let lines = width.is_multiple_of(T) && (panel.as_ptr() as usize).is_multiple_of(64);
    let mut tile = [[0f32; T]; T];
    for jt in (0..n).step_by(T) {
        let h = T.min(n - jt);
        for it in (0..inp).step_by(T) {
            let w = T.min(inp - it);
            let (from, to) = ((jt * inp) + it, it * width + j0 + jt);
            #[cfg(target_arch = "x86_64")]
            if whole && h == T && w == T {
                // SAFETY: AVX-512F was detected; rows jt..jt+16 and inputs
                // it..it+16 lie inside `src` (16 rows of `inp >= it + 16`
                // values from `from`), and the 16 runs of 16 values from
                // `to`, `width` apart, inside the panel (`j0 + jt + 16 <=
                // width`, `it + 16 <= inp`); both are checked again.
                unsafe {
                    let stream = lines && to.is_multiple_of(T);
                    x86::tile16(&src[from..], inp, &mut panel[to..], width, stream)
                };
                continue;
            }
            for (jj, t) in tile.iter_mut().enumerate().take(h) {
                let at = from + jj * inp;
                t[..w].copy_from_slice(&src[at..at + w]);
            }
            for ii in 0..w {
                let at = to + ii * width;
                for (d, t) in panel[at..at + h].iter_mut().zip(&tile) {
                    *d = t[ii];
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if whole && lines {
        // SAFETY: AVX-512F implies SSE. The streamed stores are ordered
        // before whatever this thread does next (the join that hands the
        // panels to the forwards).
        unsafe { std::arch::x86_64::_mm_sfence() };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The 16 x 16 block of `src` (rows `ld` apart) transposed into `dst`
    /// (rows `dst_ld` apart): 16 loads, four rounds of shuffles, 16 stores,
    /// non-temporal where `stream` (every row of `dst` on a cache line of
    /// its own; the caller fences).
    ///
    /// # Safety
    /// AVX-512F; with `stream`, `dst` and `dst_ld * 4` bytes 64-aligned.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile16(
        src: &[f32],
        ld: usize,
        dst: &mut [f32],
        dst_ld: usize,
        stream: bool,
    ) {
        assert!(src.len() >= 15 * ld + 16 && dst.len() >= 15 * dst_ld + 16);
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm512_loadu_ps(src.as_ptr().add(i * ld));
        }
        // Pairs of rows interleaved by 32 bits: in each 128-bit lane `L`,
        // t[2i] holds columns 4L, 4L+1 and t[2i+1] columns 4L+2, 4L+3 of
        // rows 2i and 2i+1.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // Then by 64 bits: u[4g + m] holds, in lane `L`, column 4L + m of
        // rows 4g..4g+4.
        let mut u = [_mm512_setzero_ps(); 16];
        let (lo, hi) = (
            |a: __m512, b: __m512| {
                _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
            },
            |a: __m512, b: __m512| {
                _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
            },
        );
        for g in 0..4 {
            let b = 4 * g;
            u[b] = lo(t[b], t[b + 2]);
            u[b + 1] = hi(t[b], t[b + 2]);
            u[b + 2] = lo(t[b + 1], t[b + 3]);
            u[b + 3] = hi(t[b + 1], t[b + 3]);
        }
        // Then the lanes: column 4L + m is lane L of u[m], u[4 + m],
        // u[8 + m] and u[12 + m].
        let out = dst.as_mut_ptr();
        let store = |at: usize, v: __m512| {
            if stream {
                _mm512_stream_ps(out.add(at), v)
            } else {
                _mm512_storeu_ps(out.add(at), v)
            }
        };
        for m in 0..4 {
            let v = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
            let w = _mm512_shuffle_f32x4::<0xDD>(u[m], u[4 + m]);
            let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
            let w2 = _mm512_shuffle_f32x4::<0xDD>(u[8 + m], u[12 + m]);
            store(m * dst_ld, _mm512_shuffle_f32x4::<0x88>(v, v2));
            store((4 + m) * dst_ld, _mm512_shuffle_f32x4::<0x88>(w, w2));
            store((8 + m) * dst_ld, _mm512_shuffle_f32x4::<0xDD>(v, v2));
            store((12 + m) * dst_ld, _mm512_shuffle_f32x4::<0xDD>(w, w2));
        }
    }
}

/// Runs `(first, count)` of at most `tokens` of `rows` tokens, none of a
/// single token where `rows > 1`: `gemm` multiplies one column as a
/// matrix-vector product, which sums in another order than its
/// microkernel, so a lone last token would not get the bits of the same
/// product made in one call (`the_bits_of_one_product`).
fn token_runs(rows: usize, tokens: usize) -> impl Iterator<Item = (usize, usize)> {
    let tokens = tokens.max(2);
    let mut t0 = 0;
    std::iter::from_fn(move || {
        if t0 >= rows {
            return None;
        }
        let mut n = tokens.min(rows - t0);
        if rows - t0 - n == 1 {
            n -= 1;
        }
        let run = (t0, n);
        t0 += n;
        Some(run)
    })
}

#[cfg(test)]
#[path = "panels_tests.rs"]
mod tests;
