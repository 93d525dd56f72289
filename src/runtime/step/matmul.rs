//! Matrix products for the explicit training step, straight into the
//! `gemm` crate with explicit strides: an operand stored transposed is read
//! through its strides (never copied), and a product can be added into an
//! existing buffer (a weight gradient accumulated in the optimizer's own
//! buffer, a bias pre-filled in an output).

use super::bf16;
use crate::registry::choices::Precision;

/// A read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// `rows x cols` stored row by row, `ld` values apart (`ld >= cols`).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// A contiguous row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::rows(data, rows, cols, cols)
    }

    /// A `rows x cols` view of `data`, stored row by row, or (`transposed`)
    /// stored as its `cols x rows` transpose.
    pub fn stored(data: &'a [f32], rows: usize, cols: usize, transposed: bool) -> Self {
        if transposed {
            Self::new(data, cols, rows).t()
        } else {
            Self::new(data, rows, cols)
        }
    }

    /// Its columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transpose, as a view of the same values.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Columns `c0..c0 + n` of the view.
    pub fn columns(self, c0: usize, n: usize) -> Self {
        assert!(
            c0 + n <= self.cols,
            "matmul: columns {c0}..{} of {}",
            c0 + n,
            self.cols
        );
        Mat {
            data: &self.data[(c0 * self.cs).min(self.data.len())..],
            cols: n,
            ..self
        }
    }

    /// Its rows.
    pub fn rows_count(&self) -> usize {
        self.rows
    }

    /// Element `(r, c)`.
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }

    /// Row `r` as a slice, where the view's columns are contiguous (`None`
    /// for a transposed view).
    pub(crate) fn contiguous_row(&self, r: usize) -> Option<&'a [f32]> {
        let (data, ld) = self.row_major()?;
        Some(&data[r * ld..r * ld + self.cols])
    }

    /// The buffer and the distance between rows, where the view's columns
    /// are contiguous (row `r` is `data[r * ld..r * ld + cols]`); `None` for
    /// a transposed view.
    pub(crate) fn row_major(&self) -> Option<(&'a [f32], usize)> {
        (self.cs == 1 || self.cols <= 1).then_some((self.data, self.rs))
    }

    /// The views index inside their buffers (checked once per product, so
    /// the unsafe call below never reads out of bounds).
    pub(crate) fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// A writable row-major matrix view (`ld` values between rows).
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a> MatMut<'a> {
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            ld,
        }
    }

    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::rows(data, rows, cols, cols)
    }

    pub(crate) fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.ld + self.cols <= self.data.len()
    }

    pub fn rows_count(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Values between rows.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The buffer the view writes into.
    pub(crate) fn into_data(self) -> &'a mut [f32] {
        self.data
    }
}

/// How the product meets what the destination holds.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Into {
    /// `dst = a @ b`.
    Set,
    /// `dst += scale * (a @ b)`.
    Add(f32),
}

/// The threads a product of `flops` is split over: rayon's pool, or one
/// for a small product (which costs more to split than to run).
fn threads(flops: usize) -> usize {
    let n = rayon::current_num_threads();
    if n > 1 && flops > 1 << 17 {
        n
    } else {
        1
    }
}

/// `dst (op) a @ b` for `a` `m x k`, `b` `k x n`, `dst` `m x n`, split
/// over rayon's pool (see [`product`]).
///
/// Panics when the shapes disagree or a view leaves its buffer: both are
/// bugs of the caller, never a property of user input.
pub fn matmul(dst: MatMut, a: Mat, b: Mat, how: Into) {
    let flops = 2 * a.rows * a.cols * b.cols;
    product(dst, a, b, how, threads(flops));
}

/// [`matmul`] on the calling thread only: for a product that is one of
/// several jobs running at the same time, where splitting it would only
/// hand its pieces to cores that have work of their own.
pub fn matmul_here(dst: MatMut, a: Mat, b: Mat, how: Into) {
    product(dst, a, b, how, 1);
}

/// [`matmul`] in a stage's precision: with [`Precision::Bf16`] both
/// operands are rounded to bf16 and the sums kept in f32, by
/// [`bf16::matmul_bf16`] where the CPU has AVX512-BF16, else by
/// [`emulated`] products (slower than plain f32).
pub fn matmul_in(prec: Precision, dst: MatMut, a: Mat, b: Mat, how: Into) {
    in_precision(prec, dst, a, b, how, false);
}

/// [`matmul_in`] on the calling thread only (see [`matmul_here`]).
pub fn matmul_here_in(prec: Precision, dst: MatMut, a: Mat, b: Mat, how: Into) {
    in_precision(prec, dst, a, b, how, true);
}

fn in_precision(prec: Precision, dst: MatMut, a: Mat, b: Mat, how: Into, here: bool) {
    match (prec, bf16::available(), here) {
        (Precision::Fp32, _, false) => matmul(dst, a, b, how),
        (Precision::Fp32, _, true) => matmul_here(dst, a, b, how),
        (Precision::Bf16, false, _) => emulated(dst, a, b, how, here),
        (Precision::Bf16, true, false) => {
            bf16::matmul_bf16(dst, a, b, how);
        }
        (Precision::Bf16, true, true) => {
            bf16::matmul_bf16_here(dst, a, b, how);
        }
    }
}

/// The bf16 products where the CPU lacks AVX512-BF16: the operands rounded
/// into f32 copies, multiplied by [`matmul`] (or [`matmul_here`]). The
/// products of rounded values are exact in f32, so this differs from
/// `vdpbf16ps` only in the order of the f32 sums.
fn emulated(dst: MatMut, a: Mat, b: Mat, how: Into, here: bool) {
    let (ra, rb) = (Rounded::of(&a), Rounded::of(&b));
    if here {
        matmul_here(dst, ra.view(), rb.view(), how);
    } else {
        matmul(dst, ra.view(), rb.view(), how);
    }
}

/// A view's values rounded to bf16 (as f32), stored as the view is: row by
/// row, or, for a transposed view, as its transpose (so that the copy
/// reads and writes runs of contiguous values either way).
struct Rounded {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl Rounded {
    fn of(m: &Mat) -> Self {
        let transposed = m.cs != 1 && m.rs == 1;
        let src = if transposed { m.t() } else { *m };
        let mut data = Vec::with_capacity(src.rows * src.cols);
        for r in 0..src.rows {
            match src.contiguous_row(r) {
                Some(row) => data.extend(row.iter().map(|&x| bf16::round(x))),
                None => data.extend((0..src.cols).map(|c| bf16::round(src.at(r, c)))),
            }
        }
        Rounded {
            data,
            rows: m.rows,
            cols: m.cols,
            transposed,
        }
    }

    fn view(&self) -> Mat<'_> {
        Mat::stored(&self.data, self.rows, self.cols, self.transposed)
    }
}

/// Columns of `dst` per job when a product is split: a multiple of the
/// rows of `gemm`'s f32 microkernels (64 with AVX-512, 16 with AVX2/FMA).
const COLUMNS: usize = 64;

/// The fewest rows of a product split by columns. Where both sides of a
/// product are at most 64, `gemm` cuts the inner dimension into other
/// blocks (`k.min(512)`, not its cache-sized blocks) and, under 256
/// values, sums in another order (its small kernels): a run of
/// [`COLUMNS`] columns with as few rows would not give the whole
/// product's bits (`the_column_split_keeps_the_bits`: 40 rows, 700 deep).
pub(crate) const ROWS: usize = 65;

/// `dst (op) a @ b` over `threads` threads.
///
/// Split by `gemm` itself, a product's jobs take runs of `a`'s rows (the
/// tokens), and each packs all of `b` (the weight) for itself: each
/// weight was packed twice per product and column of a batch. Split here
/// by runs of `dst`'s columns instead, each job packs only its part of
/// `b`. Each value of `dst` is still summed by the same microkernel over
/// the same blocks of `k`, so the split never changes the bits. Products
/// too narrow to split this way (fewer than two runs of [`COLUMNS`]) are
/// split by `gemm`, and so are products of fewer than [`ROWS`] rows.
fn product(dst: MatMut, a: Mat, b: Mat, how: Into, threads: usize) {
    use rayon::prelude::*;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.rows == m && dst.cols == n,
        "matmul: {m}x{k} @ {}x{n} into {}x{}",
        b.rows,
        dst.rows,
        dst.cols
    );
    assert!(
        a.fits() && b.fits() && dst.fits(),
        "matmul: a view leaves its buffer"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if how == Into::Set {
            for r in 0..m {
                dst.data[r * dst.ld..r * dst.ld + n].fill(0.0);
            }
        }
        return;
    }
    let ld = dst.ld;
    let out = SendPtr(dst.data.as_mut_ptr());
    // Columns c0..c1 of the product.
    let columns = |(c0, c1): (usize, usize), par: gemm::Parallelism| {
        let (read_dst, beta) = match how {
            Into::Set => (false, 1.0),
            Into::Add(s) => (true, s),
        };
        // SAFETY: `fits` checked that every element the strides address
        // lies inside its slice, so do the columns c0..c1 of each; `dst`
        // is borrowed mutably, so it aliases neither operand, and the
        // calls that run at the same time write disjoint columns.
        unsafe {
            gemm::gemm(
                m,
                c1 - c0,
                k,
                out.get().add(c0),
                1,
                ld as isize,
                read_dst,
                a.data.as_ptr(),
                a.cs as isize,
                a.rs as isize,
                b.data.as_ptr().add(c0 * b.cs),
                b.cs as isize,
                b.rs as isize,
                1.0f32,
                beta,
                false,
                false,
                false,
                par,
            );
        }
    };
    let run = n.div_ceil(threads.max(1)).next_multiple_of(COLUMNS);
    let runs = n / run;
    if threads <= 1 {
        columns((0, n), gemm::Parallelism::None);
    } else if runs >= 2 && m >= ROWS {
        // The last run takes the rest: no run is narrower than COLUMNS.
        (0..runs).into_par_iter().for_each(|j| {
            let end = if j + 1 == runs { n } else { (j + 1) * run };
            columns((j * run, end), gemm::Parallelism::None)
        });
    } else {
        columns((0, n), gemm::Parallelism::Rayon(threads));
    }
}

/// `n` values in [-1, 1) that look random and depend on `seed`: operands
/// for the products' tests.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 7) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// A destination's pointer, shared by the jobs of a split product (here
/// and in [`super::bf16`]), each of which writes only its own columns.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the jobs that share it write disjoint elements (see `product`
// and `bf16::product`).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
#[path = "matmul_tests.rs"]
mod tests;
