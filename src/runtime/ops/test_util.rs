//! Helpers of the ops' tests: gradients through candle, comparisons and
//! random variables.

use candle_core::Tensor;

/// Values and input gradients (for a fixed random output weighting) of
/// `f` at `x`, and the gradients of `extra`.
pub(super) fn value_and_grads(
    f: impl Fn(&Tensor) -> Tensor,
    x: &candle_core::Var,
    extra: &[&candle_core::Var],
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let y = f(x.as_tensor());
    let n = y.elem_count();
    let weights: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 97) as f32 / 48.5) - 1.0)
        .collect();
    let wt = Tensor::from_vec(weights, y.shape(), y.device()).unwrap();
    let grads = (&y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut gs = vec![flat(grads.get(x.as_tensor()).unwrap())];
    for v in extra {
        gs.push(flat(grads.get(v.as_tensor()).unwrap()));
    }
    (flat(&y), gs)
}

pub(super) fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

pub(super) fn random_var(shape: &[usize], seed: u64, scale: f32) -> candle_core::Var {
    let mut rng = crate::runtime::train::rng::Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        .map(|u| u * scale)
        .collect();
    candle_core::Var::from_tensor(&Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap())
        .unwrap()
}
