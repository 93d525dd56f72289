//! The machine's measured sgemm throughput on the shapes of a training
//! step (the reference for the FLOP utilisation in docs/performance.md):
//! `m x k @ k x n` with each operand read as is or transposed, through the
//! same `gemm` calls the explicit training step makes, on rayon's pool.
//!
//! Where the CPU has AVX512-BF16, the same shapes also run through
//! `step::bf16::matmul_bf16` (bf16 operands packed per call, f32 sums),
//! the products a bf16 stage setting would use.
//!
//!   cargo run --release --example sgemm_peak [ROWS] [REPEATS]

use std::time::Instant;

use stpipe::runtime::step::bf16::{available, matmul_bf16};
use stpipe::runtime::step::matmul::{matmul, Into, Mat, MatMut};

/// The product `gflops` times: `matmul` (f32, the `gemm` crate) or
/// `bf16_product`.
type Product = fn(MatMut, Mat, Mat, Into);

fn bf16_product(dst: MatMut, a: Mat, b: Mat, how: Into) {
    assert!(matmul_bf16(dst, a, b, how), "no AVX512-BF16");
}

/// The `m x k @ k x n` shapes of a layer's forward products for `rows`
/// tokens: attention output, intermediate, output, q/k/v stacked.
fn layer_shapes(rows: usize) -> [(usize, usize, usize); 4] {
    [
        (rows, 384, 384),
        (rows, 1536, 384),
        (rows, 384, 1536),
        (rows, 1152, 384),
    ]
}

fn gflops(product: Product, m: usize, n: usize, k: usize, ta: bool, tb: bool, reps: usize) -> f64 {
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i % 89) as f32 - 44.0) / 89.0)
        .collect();
    let mut c = vec![0f32; m * n];
    let av = Mat::stored(&a, m, k, ta);
    let bv = Mat::stored(&b, k, n, tb);
    for _ in 0..3 {
        product(MatMut::new(&mut c, m, n), av, bv, Into::Set);
    }
    let t = Instant::now();
    for _ in 0..reps {
        product(MatMut::new(&mut c, m, n), av, bv, Into::Add(1.0));
    }
    2.0 * (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    stpipe::runtime::process::init(stpipe::runtime::process::Workload::Training);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(480);
    let reps = args.get(1).copied().unwrap_or(50);
    println!("threads: {}", rayon::current_num_threads());
    let mut best = 0f64;
    for (m, n, k) in layer_shapes(rows) {
        let nn = gflops(matmul, m, n, k, false, false, reps);
        let nt = gflops(matmul, m, n, k, false, true, reps);
        let tn = gflops(matmul, m, n, k, true, false, reps);
        best = best.max(nn).max(nt).max(tn);
        println!("{m}x{k} @ {k}x{n}: NN {nn:.1}  NT {nt:.1}  TN {tn:.1} GFLOP/s");
    }
    for (m, n, k) in [(384, 384, rows), (1536, 384, rows), (384, 1536, rows)] {
        let tn = gflops(matmul, m, n, k, true, false, reps);
        best = best.max(tn);
        println!("weight gradient {m}x{n} over {k} rows: TN {tn:.1} GFLOP/s");
    }
    println!("peak: {best:.1} GFLOP/s");
    if !available() {
        println!("bf16: this CPU has no AVX512-BF16");
        return;
    }
    for (m, n, k) in layer_shapes(rows) {
        let nn = gflops(bf16_product, m, n, k, false, false, reps);
        let nt = gflops(bf16_product, m, n, k, false, true, reps);
        println!("bf16 {m}x{k} @ {k}x{n}: NN {nn:.1}  NT {nt:.1} GFLOP/s");
    }
}
