//! Tests of [`super`]: the bf16 products against sums over rounded
//! operands, packed or not, and the vector conversions against the scalar one.

use super::*;

/// `a @ b` in f64 over the bf16-rounded operands.
fn reference(a: &Mat, b: &Mat) -> Vec<f64> {
    let (m, k, n) = (a.rows_count(), a.cols(), b.cols());
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|l| {
                    from_bf16(to_bf16(a.at(i, l))) as f64 * from_bf16(to_bf16(b.at(l, j))) as f64
                })
                .sum();
        }
    }
    out
}

#[test]
fn products_equal_the_sum_over_rounded_operands() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX512-BF16");
        return;
    }
    // Odd sizes: partial tiles in both directions, an odd inner
    // dimension, more than one block of the inner dimension, and more
    // than one group of row blocks.
    for (m, k, n) in [
        (1, 1, 1),
        (9, 7, 33),
        (17, 515, 70),
        (37, 64, 32),
        (131, 519, 45),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 13.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 7.0)
            .collect();
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            let av = Mat::stored(&a, m, k, ta);
            let bv = Mat::stored(&b, k, n, tb);
            let want = reference(&av, &bv);
            let tol = |w: f64| 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt();
            let mut got = vec![7f32; m * n];
            assert!(matmul_bf16(MatMut::new(&mut got, m, n), av, bv, Into::Set));
            // Packed once beforehand, on any thread count: the same bits.
            let packed = PackedB::new(bv).expect("available");
            assert_eq!(packed.dims(), (k, n));
            for par in [true, false] {
                let mut again = vec![-3f32; m * n];
                let dst = MatMut::new(&mut again, m, n);
                matmul_bf16_packed(dst, av, &packed, Into::Set, par);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&again), bits(&got), "{m}x{k}x{n} {ta} {tb} packed");
            }
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() <= tol(*w),
                    "{m}x{k}x{n} {ta} {tb}: {g} vs {w}"
                );
            }
            // Added at half weight into a column block of a wider matrix.
            let mut wide = vec![1f32; m * (n + 3)];
            let dst = MatMut::rows(&mut wide[2..], m, n, n + 3);
            assert!(matmul_bf16(dst, av, bv, Into::Add(0.5)));
            for r in 0..m {
                for c in 0..n + 3 {
                    let g = wide[r * (n + 3) + c] as f64;
                    if (2..n + 2).contains(&c) {
                        let w = 1.0 + 0.5 * want[r * n + c - 2];
                        assert!((g - w).abs() <= tol(w), "added: {g} vs {w}");
                    } else {
                        assert_eq!(g, 1.0, "a column outside the view changed");
                    }
                }
            }
        }
    }
}

#[test]
fn the_vector_conversions_equal_the_scalar_one() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX512-BF16 (no vector conversion to compare)");
        return;
    }
    // Ties, subnormals, zeros of both signs, infinities, NaNs, the
    // largest floats, and a spread of ordinary values; 37 of them, so
    // that both loops end in a partial run.
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::MAX,
        -f32::MAX,
    ];
    vals.extend((0..24).map(|i| f32::from_bits(0x3f80_0000u32.wrapping_add(i * 0x0012_3457))));
    let scalar = |v: f32| to_bf16(v);
    let mut dst = vec![0u32; vals.len()];
    let hi: Vec<f32> = vals.iter().rev().copied().collect();
    pair_rows(&vals, Some(&hi), &mut dst);
    for (c, d) in dst.iter().enumerate() {
        assert_eq!(
            *d & 0xffff,
            scalar(vals[c]) as u32,
            "low half of {c}: {:e}",
            vals[c]
        );
        assert_eq!(
            *d >> 16,
            scalar(hi[c]) as u32,
            "high half of {c}: {:e}",
            hi[c]
        );
    }
    let mut dst = vec![u32::MAX; vals.len().div_ceil(2) + 1];
    convert_run(&vals, &mut dst);
    for p in 0..vals.len().div_ceil(2) {
        let hi = vals.get(2 * p + 1).copied().unwrap_or(0.0);
        assert_eq!(dst[p], pair(vals[2 * p], hi), "pair {p}");
    }
    assert_eq!(*dst.last().unwrap(), u32::MAX, "written past the run");
}

#[test]
fn an_empty_inner_dimension_clears_or_keeps() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX512-BF16");
        return;
    }
    let (a, b) = (Vec::<f32>::new(), Vec::<f32>::new());
    let mut out = vec![3f32; 6];
    assert!(matmul_bf16(
        MatMut::new(&mut out, 2, 3),
        Mat::new(&a, 2, 0),
        Mat::new(&b, 0, 3),
        Into::Add(1.0)
    ));
    assert_eq!(out, vec![3.0; 6]);
    assert!(matmul_bf16(
        MatMut::new(&mut out, 2, 3),
        Mat::new(&a, 2, 0),
        Mat::new(&b, 0, 3),
        Into::Set
    ));
    assert_eq!(out, vec![0.0; 6]);
}
