//! Tests of the optimizer step: the gradient's norm over blocks and
//! lanes, clipping and weight decay, row gradients updating as the dense
//! gradient would, and the gradient buffers lent once each.

use super::*;

#[test]
fn sum_of_squares_over_blocks_and_lanes() {
    // Longer than one parallel block, not a multiple of the 8 lanes.
    let g: Vec<f32> = (0..200_003)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3)
        .collect();
    let want: f64 = g.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let got = sum_of_squares(&g);
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    // The same values give the same bits, run after run.
    assert_eq!(got.to_bits(), sum_of_squares(&g).to_bits());
    assert_eq!(sum_of_squares(&[]), 0.0);
    assert_eq!(sum_of_squares(&[2.0; 5]), 20.0);
}

#[test]
fn clipping_and_decay_rules() {
    let norm = (sum_of_squares(&[3.0, 4.0]) + sum_of_squares(&[0.0])).sqrt();
    assert_eq!(norm, 5.0);
    assert!((clip_factor(norm, 1.0) - 0.2).abs() < 1e-6);
    assert_eq!(clip_factor(0.5, 1.0), 1.0);
    assert!(decays("encoder.layer.0.attention.self.query.weight"));
    assert!(!decays("encoder.layer.0.attention.self.query.bias"));
    assert!(!decays("encoder.layer.0.output.LayerNorm.weight"));
    assert!(!decays("embeddings.LayerNorm.weight"));
    assert!(!decays("transformer.layer.0.sa_layer_norm.weight"));
    assert!(!decays("layers.1.attn_norm.weight"));
    assert!(!decays("embeddings.norm.weight"));
    assert!(!decays("final_norm.weight"));
    assert!(decays("layers.0.attn.Wqkv.weight"));
    assert!(!decays("encoder.relative_attention_bias.weight"));
    assert!(decays("normalizer.weight"));
}

/// A table whose gradient is kept as touched rows is updated exactly as
/// with a dense gradient (untouched rows' moments decay and weight
/// decay applies to them too), repeated ids included, and a row table
/// asked for a dense buffer keeps its rows.
#[test]
fn row_gradients_update_as_the_dense_gradient() {
    use crate::runtime::step::GradSink;
    use candle_core::Device;
    let make = || {
        let v: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) / 10.0).collect();
        Var::from_tensor(&Tensor::from_vec(v, (10, 4), &Device::Cpu).unwrap()).unwrap()
    };
    let rule = || -> Box<dyn UpdateRule> { Box::new(adamw::AdamWConfig::default()) };
    let (a, b) = (make(), make());
    let mut dense = Optimizer::new(vec![("emb.weight".into(), a.clone())], rule()).unwrap();
    let mut rows = Optimizer::new(vec![("emb.weight".into(), b.clone())], rule()).unwrap();
    rows.keep_rows(&b);
    assert!(matches!(rows.params[0].grad, Grad::Rows(_)));
    for step in 0..4 {
        let ids = [1u32, 7, 1];
        let g: Vec<f32> = (0..12)
            .map(|i| (i as f32 - 5.0) / 7.0 + step as f32)
            .collect();
        Sink {
            opt: &mut rows,
            scale: 0.5,
        }
        .add_rows(&b, &ids, &g);
        {
            let mut s = Sink {
                opt: &mut dense,
                scale: 0.5,
            };
            let (buf, scale) = s.buffer(&a).unwrap();
            for (k, &id) in ids.iter().enumerate() {
                for j in 0..4 {
                    buf[id as usize * 4 + j] += scale * g[k * 4 + j];
                }
            }
        }
        assert_eq!(dense.grad_norm(), rows.grad_norm());
        dense.step(1e-2, 1.0).unwrap();
        rows.step(1e-2, 1.0).unwrap();
        // A step clears what it applied.
        assert_eq!((dense.grad_norm(), rows.grad_norm()), (0.0, 0.0));
    }
    let (wa, wb) = (
        a.as_tensor().to_vec2::<f32>().unwrap(),
        b.as_tensor().to_vec2::<f32>().unwrap(),
    );
    assert_eq!(wa, wb);
    assert_eq!(dense.moments(), rows.moments());
    // Untouched rows moved too (weight decay), and the touched ones more.
    let start = make().as_tensor().to_vec2::<f32>().unwrap();
    assert_ne!(wb[0], start[0]);
    // Restored from a checkpoint, the rows with state are known again:
    // two more steps, one touching a row never seen before, give the
    // dense optimizer's bits.
    let c = make();
    let mut resumed = Optimizer::new(vec![("emb.weight".into(), c.clone())], rule()).unwrap();
    resumed.keep_rows(&c);
    resumed
        .restore(&rows.weights(), &rows.moments(), rows.steps)
        .unwrap();
    for ids in [[4u32], [7]] {
        let g = [0.25f32, -1.0, 0.5, 2.0];
        Sink {
            opt: &mut resumed,
            scale: 1.0,
        }
        .add_rows(&c, &ids, &g);
        let mut s = Sink {
            opt: &mut dense,
            scale: 1.0,
        };
        let (buf, _) = s.buffer(&a).unwrap();
        let r = ids[0] as usize * 4;
        buf[r..r + 4].iter_mut().zip(g).for_each(|(b, g)| *b += g);
        dense.step(1e-2, 1.0).unwrap();
        resumed.step(1e-2, 1.0).unwrap();
    }
    assert_eq!(
        a.as_tensor().to_vec2::<f32>().unwrap(),
        c.as_tensor().to_vec2::<f32>().unwrap()
    );
    assert_eq!(dense.moments(), resumed.moments());
    // Asked for a dense buffer, a row gradient keeps what it held.
    Sink {
        opt: &mut rows,
        scale: 1.0,
    }
    .add_rows(&b, &[3], &[1.0, 2.0, 3.0, 4.0]);
    let mut s = Sink {
        opt: &mut rows,
        scale: 1.0,
    };
    let (buf, _) = s.buffer(&b).unwrap();
    assert_eq!(&buf[12..16], &[1.0, 2.0, 3.0, 4.0]);
    assert!(buf[..12].iter().chain(&buf[16..]).all(|v| *v == 0.0));
}

/// `buffers` lends each trained variable's buffer once (disjoint, all
/// at once), at the sink's scale: an untrained variable gets none, one
/// named twice gets its buffer at its first place only, and a row
/// gradient becomes dense with what it held.
#[test]
fn buffers_are_lent_once_each() {
    use crate::runtime::step::GradSink;
    use candle_core::{DType, Device};
    let var = |n: usize| {
        Var::from_tensor(&Tensor::zeros((n, 2), DType::F32, &Device::Cpu).unwrap()).unwrap()
    };
    let (a, b, rows, other) = (var(3), var(2), var(4), var(1));
    let rule: Box<dyn UpdateRule> = Box::new(adamw::AdamWConfig::default());
    let named = vec![
        ("a".to_string(), a.clone()),
        ("b".to_string(), b.clone()),
        ("emb".to_string(), rows.clone()),
    ];
    let mut opt = Optimizer::new(named, rule).unwrap();
    opt.keep_rows(&rows);
    let mut s = Sink {
        opt: &mut opt,
        scale: 0.25,
    };
    s.add_rows(&rows, &[2], &[5.0, 6.0]); // at the scale 0.25
    let got = s.buffers(&[b.clone(), other, a.clone(), b.clone(), rows.clone()]);
    let lens: Vec<Option<(usize, f32)>> = got
        .iter()
        .map(|b| b.as_ref().map(|(v, s)| (v.len(), *s)))
        .collect();
    assert_eq!(
        lens,
        vec![
            Some((4, 0.25)),
            None,
            Some((6, 0.25)),
            None,
            Some((8, 0.25))
        ]
    );
    let mut got = got;
    if let Some((emb, _)) = &got[4] {
        assert_eq!(&emb[..], &[0.0, 0.0, 0.0, 0.0, 1.25, 1.5, 0.0, 0.0]);
    }
    // Written through at once: each lands in its own parameter's gradient.
    for (k, buf) in got.iter_mut().enumerate() {
        if let Some((v, _)) = buf {
            v.fill(k as f32);
        }
    }
    drop(got);
    let dense = |v: &Var| match &s.opt.params[s.opt.by_var[&v.as_tensor().id()]].grad {
        Grad::Dense(g) => g.clone(),
        Grad::Rows(_) => panic!("still rows"),
    };
    assert_eq!(dense(&b), vec![0.0; 4]);
    assert_eq!(dense(&a), vec![2.0; 6]);
    assert_eq!(dense(&rows), vec![4.0; 8]);
}
