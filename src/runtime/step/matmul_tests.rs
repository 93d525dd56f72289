//! Tests of the explicit step's products: every transposition and
//! accumulation against a naive sum, the split by output columns (same
//! bits on any number of threads), bf16 products with and without the
//! instructions.

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

/// A product split over threads by runs of the destination's columns
/// gives the bits of the same product on one thread, for every
/// transposition, ragged last runs, a destination wider than the
/// product, and `Add`.
#[test]
fn the_column_split_keeps_the_bits() {
    for (m, k, n) in [
        (230, 384, 1152),
        (61, 1536, 384),
        (5, 70, 200),
        (16, 70, 200),
        (300, 33, 129),
        (40, 9, 1000),
        (40, 700, 128),
        (64, 1100, 190),
    ] {
        let (a, b) = (test_values(m * k, 1), test_values(k * n, 2));
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let av = Mat::stored(&a, m, k, ta);
            let bv = Mat::stored(&b, k, n, tb);
            for how in [Into::Set, Into::Add(0.5)] {
                let ld = n + 3;
                let start = test_values(m * ld, 3);
                let mut one = start.clone();
                product(MatMut::rows(&mut one, m, n, ld), av, bv, how, 1);
                for threads in [2, 3, 8] {
                    let mut split = start.clone();
                    product(MatMut::rows(&mut split, m, n, ld), av, bv, how, threads);
                    assert!(
                        split == one,
                        "{m}x{k}x{n} ta {ta} tb {tb} {how:?} threads {threads}"
                    );
                }
            }
        }
    }
}

/// `precision: bf16`'s products, by the instruction where the CPU has
/// it and by the emulation always: both are the sums over operands
/// rounded to bf16, for every transposition, a view with a leading
/// dimension, and `Add` into a column block; and they are not the f32
/// product (the operands here are not bf16 values).
#[test]
fn bf16_products_round_both_operands_with_or_without_the_instructions() {
    let (m, k, n) = (19, 530, 41);
    let a: Vec<f32> = (0..m * 2 * k)
        .map(|i| 1.0 + ((i * 7919 % 1009) as f32) / 3001.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 1013.0)
        .collect();
    let round = |v: &[f32]| v.iter().map(|&x| bf16::round(x)).collect::<Vec<_>>();
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        // `a` is the left half of an m x 2k buffer (or its transpose).
        let av = if ta {
            Mat::rows(&a, k, m, 2 * m).t()
        } else {
            Mat::rows(&a, m, k, 2 * k)
        };
        let dense_a: Vec<f32> = (0..m)
            .flat_map(|r| (0..k).map(move |c| (r, c)))
            .map(|(r, c)| av.at(r, c))
            .collect();
        let bv = Mat::stored(&b, k, n, tb);
        let dense_b: Vec<f32> = (0..k)
            .flat_map(|r| (0..n).map(move |c| (r, c)))
            .map(|(r, c)| bv.at(r, c))
            .collect();
        let want = naive(&round(&dense_a), false, &round(&dense_b), false, m, k, n);
        let exact = naive(&dense_a, false, &dense_b, false, m, k, n);
        let run = |how: &dyn Fn(MatMut)| {
            let mut wide = vec![1f32; m * (n + 3)];
            how(MatMut::rows(&mut wide[2..], m, n, n + 3));
            wide
        };
        let mut ways: Vec<(&str, Vec<f32>)> = vec![
            (
                "emulated",
                run(&|d| emulated(d, av, bv, Into::Add(0.5), false)),
            ),
            (
                "emulated here",
                run(&|d| emulated(d, av, bv, Into::Add(0.5), true)),
            ),
            (
                "matmul_in",
                run(&|d| matmul_in(Precision::Bf16, d, av, bv, Into::Add(0.5))),
            ),
            (
                "matmul_here_in",
                run(&|d| matmul_here_in(Precision::Bf16, d, av, bv, Into::Add(0.5))),
            ),
        ];
        if bf16::available() {
            ways.push((
                "vdpbf16ps here",
                run(&|d| {
                    bf16::matmul_bf16_here(d, av, bv, Into::Add(0.5));
                }),
            ));
        }
        for (what, got) in ways {
            let mut off_f32 = 0f32;
            for r in 0..m {
                for c in 0..n + 3 {
                    let g = got[r * (n + 3) + c];
                    if !(2..n + 2).contains(&c) {
                        assert_eq!(g, 1.0, "{what}: a column outside the view changed");
                        continue;
                    }
                    let (w, e) = (
                        1.0 + 0.5 * want[r * n + c - 2],
                        1.0 + 0.5 * exact[r * n + c - 2],
                    );
                    assert!(
                        (g - w).abs() <= 2e-4 * w.abs().max(1.0),
                        "{what} {ta} {tb}: {g} vs {w}"
                    );
                    off_f32 = off_f32.max((g - e).abs() / e.abs().max(1.0));
                }
            }
            assert!(
                off_f32 > 1e-3,
                "{what} {ta} {tb}: the f32 product ({off_f32:e} away)"
            );
        }
    }
    // f32 is `matmul` itself, bit for bit.
    let (av, bv) = (Mat::rows(&a, m, k, 2 * k), Mat::new(&b, k, n));
    let (mut x, mut y) = (vec![0f32; m * n], vec![0f32; m * n]);
    matmul_in(
        Precision::Fp32,
        MatMut::new(&mut x, m, n),
        av,
        bv,
        Into::Set,
    );
    matmul(MatMut::new(&mut y, m, n), av, bv, Into::Set);
    assert_eq!(x, y);
}
