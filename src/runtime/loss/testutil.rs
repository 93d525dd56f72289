//! Test helpers: deterministic inputs and a finite-difference gradient check.

use candle_core::{Device, Result, Tensor, Var};

/// `x[i][j] = sin(0.37 * (c*97 + i*13 + j) + 0.5)`: the same inputs the
/// reference values were computed from in Python (sentence-transformers
/// 6.2.0, torch float64).
pub fn gen(c: usize, n: usize, d: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| {
            (0..d)
                .map(|j| (0.37 * (c * 97 + i * 13 + j) as f64 + 0.5).sin())
                .collect()
        })
        .collect()
}

/// Scores `((7i) mod 5) / 4`, with ties: 0, 0.5, 0.25, 1, 0.75, ...
pub fn gen_scores(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 7) % 5) as f64 / 4.0).collect()
}

/// Teacher scores `((7i + 3j) mod 5) * 2.5`, `n` rows of `k`: the label
/// lists of the distillation losses' reference cases.
pub fn teacher_scores(n: usize, k: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| (0..k).map(|j| ((i * 7 + j * 3) % 5) as f64 * 2.5).collect())
        .collect()
}

pub fn t2(rows: &[Vec<f64>]) -> Tensor {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (n, d), &Device::Cpu).expect("test tensor")
}

pub fn t1(v: &[f64]) -> Tensor {
    Tensor::from_slice(v, v.len(), &Device::Cpu).expect("test tensor")
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_vec0::<f64>().expect("scalar loss")
}

/// Checks the backward gradients of `f` with respect to each input matrix
/// against central finite differences (step 1e-5, f64): every element must
/// agree within `1e-6 * max(1, |fd|)`.
pub fn check_grads(
    inputs: &[Vec<Vec<f64>>],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|m| Var::from_tensor(&t2(m)))
        .collect::<Result<_>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = f(&tensors)?.backward()?;
    let h = 1e-5;
    for (k, m) in inputs.iter().enumerate() {
        let g = grads
            .get(vars[k].as_tensor())
            .map(|g| g.to_vec2::<f64>())
            .transpose()?
            .unwrap_or_else(|| vec![vec![0.0; m[0].len()]; m.len()]);
        for i in 0..m.len() {
            for j in 0..m[i].len() {
                let eval = |delta: f64| -> Result<f64> {
                    let ts: Vec<Tensor> = inputs
                        .iter()
                        .enumerate()
                        .map(|(kk, mm)| {
                            let mut mm = mm.clone();
                            if kk == k {
                                mm[i][j] += delta;
                            }
                            t2(&mm)
                        })
                        .collect();
                    f(&ts)?.to_vec0::<f64>()
                };
                let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
                let tol = 1e-6 * fd.abs().max(1.0);
                assert!(
                    (g[i][j] - fd).abs() <= tol,
                    "input {k} [{i}][{j}]: backward {} vs finite difference {fd}",
                    g[i][j]
                );
            }
        }
    }
    Ok(())
}

/// Labels of the batch triplet loss cases: classes of 3, 2, 2 and 1 texts.
pub const BATCH_LABELS: [i64; 8] = [0, 1, 0, 1, 2, 2, 0, 3];

fn batch_inputs(e: Tensor) -> Result<super::LossInputs> {
    Ok(super::LossInputs::new(vec![e]).with_labels(Tensor::new(&BATCH_LABELS, &Device::Cpu)?))
}

/// A batch triplet loss on `gen(3, 8, 4)` with [`BATCH_LABELS`].
pub fn batch_value(loss: &dyn super::Loss) -> Result<f64> {
    Ok(scalar(&loss.forward(&batch_inputs(t2(&gen(3, 8, 4)))?)?))
}

/// The gradient check of a batch triplet loss on the same inputs.
pub fn batch_grads(loss: &dyn super::Loss) -> Result<()> {
    check_grads(&[gen(3, 8, 4)], |t| {
        loss.forward(&batch_inputs(t[0].clone())?)
    })
}

/// The loss over embedding columns given as rows of numbers.
pub fn columns_value(loss: &dyn super::Loss, cols: &[Vec<Vec<f64>>]) -> Result<f64> {
    Ok(scalar(&loss.forward(&super::LossInputs::new(
        cols.iter().map(|c| t2(c)).collect(),
    ))?))
}

/// The loss over embedding columns and a float score per row.
pub fn scored_value(loss: &dyn super::Loss, cols: &[Vec<Vec<f64>>], scores: &[f64]) -> Result<f64> {
    let inputs =
        super::LossInputs::new(cols.iter().map(|c| t2(c)).collect()).with_scores(t1(scores));
    Ok(scalar(&loss.forward(&inputs)?))
}

/// Every computed value equals the reference figure (sentence-transformers'
/// own, printed by the reference scripts in `scripts/`) to 1e-10.
pub fn assert_reference(cases: &[(f64, f64)]) {
    for (got, want) in cases {
        assert!((got - want).abs() < 1e-10, "{got} vs {want}");
    }
}
