//! Matrix products for the explicit training step, straight into the
//! `gemm` crate with explicit strides: an operand stored transposed is read
//! through its strides (never copied), and a product can be added into an
//! existing buffer (a weight gradient accumulated in the optimizer's own
//! buffer, a bias pre-filled in an output).

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
        let start = r * self.rs;
        (self.cs == 1 || self.cols <= 1).then(|| &self.data[start..start + self.cols])
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

/// The thread count gemm splits a product over: rayon's pool.
fn parallelism(flops: usize) -> gemm::Parallelism {
    let n = rayon::current_num_threads();
    // Small products cost more to split than to run.
    if n > 1 && flops > 1 << 17 {
        gemm::Parallelism::Rayon(n)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst (op) a @ b` for `a` `m x k`, `b` `k x n`, `dst` `m x n`.
///
/// Panics when the shapes disagree or a view leaves its buffer: both are
/// bugs of the caller, never a property of user input.
pub fn matmul(dst: MatMut, a: Mat, b: Mat, how: Into) {
    let flops = 2 * a.rows * a.cols * b.cols;
    product(dst, a, b, how, parallelism(flops));
}

/// [`matmul`] on the calling thread only: for a product that is one of
/// several jobs running at the same time, where splitting it would only
/// hand its pieces to cores that have work of their own.
pub fn matmul_here(dst: MatMut, a: Mat, b: Mat, how: Into) {
    product(dst, a, b, how, gemm::Parallelism::None);
}

fn product(dst: MatMut, a: Mat, b: Mat, how: Into, par: gemm::Parallelism) {
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
    let (read_dst, beta) = match how {
        Into::Set => (false, 1.0),
        Into::Add(s) => (true, s),
    };
    // SAFETY: `fits` checked that every element the strides address lies
    // inside its slice; `dst` is borrowed mutably, so it aliases neither
    // operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.ld as isize,
            read_dst,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], ta: bool, b: &[f32], tb: bool, m: usize, k: usize, n: usize) -> Vec<f32> {
        let at = |i: usize, j: usize| if ta { a[j * m + i] } else { a[i * k + j] };
        let bt = |i: usize, j: usize| if tb { b[j * k + i] } else { b[i * n + j] };
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| at(i, l) * bt(l, j)).sum();
            }
        }
        out
    }

    #[test]
    fn every_transposition_and_accumulation() {
        let (m, k, n) = (37, 29, 45);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
            .collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let want = naive(&a, ta, &b, tb, m, k, n);
            let av = Mat::stored(&a, m, k, ta);
            let bv = Mat::stored(&b, k, n, tb);
            let mut got = vec![1f32; m * n];
            matmul(MatMut::new(&mut got, m, n), av, bv, Into::Set);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{ta} {tb}: {g} vs {w}");
            }
            // Added at half weight onto ones.
            let mut acc = vec![1f32; m * n];
            matmul(MatMut::new(&mut acc, m, n), av, bv, Into::Add(0.5));
            for (g, w) in acc.iter().zip(&want) {
                assert!((g - (1.0 + 0.5 * w)).abs() < 1e-4);
            }
        }
        // A column block of a wider matrix, written into a column block.
        let wide: Vec<f32> = (0..m * 3 * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let mid = Mat::rows(&wide[k..], m, k, 3 * k);
        let mut out = vec![0f32; m * 2 * n];
        matmul(
            MatMut::rows(&mut out[n..], m, n, 2 * n),
            mid,
            Mat::new(&b, k, n),
            Into::Set,
        );
        let dense: Vec<f32> = (0..m)
            .flat_map(|r| wide[r * 3 * k + k..r * 3 * k + 2 * k].to_vec())
            .collect();
        let want = naive(&dense, false, &b, false, m, k, n);
        for r in 0..m {
            for c in 0..n {
                assert!((out[r * 2 * n + n + c] - want[r * n + c]).abs() < 1e-3);
                assert_eq!(out[r * 2 * n + c], 0.0, "the other block is untouched");
            }
        }
    }
}
