//! One optimizer step over every parameter at once.
//!
//! Updated one parameter after another, each in parallel over its own
//! blocks, a step was a hundred short fork-joins (MiniLM has 101 trainable
//! tensors, most of them biases and norms of 384 values): between them one
//! core waited, and the step's gradient norm did the same. Here the norm's
//! blocks and the update's blocks of all parameters are each one parallel
//! pass. The update needs every parameter's storage at once: each storage
//! is held by its own in-place op, which lends its values and runs the
//! next parameter's op inside it ([`with_values`]).

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp1, Layout, Var};

use super::grad::{Block, Grad};
use super::{block_squares, Param, StepAt, UpdateRule, SQUARES_BLOCK};
use crate::runtime::step::weight_panels::{Taken, WeightPanels};
use crate::runtime::train::error::{Result, RunError};

/// The global L2 norm of the parameters' gradients: each gradient's sum of
/// squares in fixed blocks, all blocks in one parallel pass, then added
/// block after block and parameter after parameter. The result depends
/// only on the values, never on the threads.
pub(super) fn grad_norm(params: &[Param]) -> f64 {
    use rayon::prelude::*;
    let blocks: Vec<(usize, &[f32])> = params
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.grad.values().chunks(SQUARES_BLOCK).map(move |c| (i, c)))
        .collect();
    let partials: Vec<f64> = blocks.par_iter().map(|(_, g)| block_squares(g)).collect();
    let mut per_param = vec![Vec::new(); params.len()];
    for ((i, _), s) in blocks.iter().zip(partials) {
        per_param[*i].push(s);
    }
    per_param
        .iter()
        .map(|s| s.iter().sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

/// The most parameters one pass of [`update_all`] holds at once (MiniLM
/// has 101, BERT-large 391).
const GROUP: usize = 512;

/// `rule`'s update of every parameter with its accumulated gradient (then
/// cleared), `at` giving each parameter's [`StepAt`]; the weights whose
/// panels a forward asked for in `panels` get them written anew.
pub(super) fn update_all(
    params: &mut [Param],
    rule: &dyn UpdateRule,
    at: impl Fn(&Param) -> StepAt,
    panels: Option<&WeightPanels>,
) -> Result<()> {
    use rayon::prelude::*;
    let vars: Vec<Var> = params.iter().map(|p| p.var.clone()).collect();
    // Each storage can be held once: a tensor listed twice is updated
    // on its own. Each storage held is a frame of the lending recursion:
    // groups of at most GROUP keep its depth bounded for any model.
    let mut ids = std::collections::HashSet::new();
    let per_group = if vars.iter().all(|v| ids.insert(v.id())) {
        vars.len().clamp(1, GROUP)
    } else {
        1
    };
    let groups = (0..vars.len())
        .step_by(per_group)
        .map(|i| i..(i + per_group).min(vars.len()));
    for range in groups {
        let params = &mut params[range.clone()];
        // Every weight's panels are invalid from here; they are written
        // again only beside a dense gradient (every linear weight's).
        let mut taken: Vec<Option<Taken>> = params
            .iter()
            .map(|p| {
                let t = panels?.take(p.var.as_tensor().id())?;
                matches!(p.grad, Grad::Dense(_)).then_some(t)
            })
            .collect();
        with_values(&vars[range], &mut |values| {
            let mut blocks: Vec<Block> = Vec::new();
            for ((p, v), t) in params.iter_mut().zip(values).zip(taken.iter_mut()) {
                let at = at(p);
                let Param {
                    name,
                    grad,
                    moments,
                    ..
                } = p;
                let panels = t.as_mut().map(|t| (t.data.as_mut_slice(), t.out, t.inp));
                grad.blocks(v, moments.as_mut(), at, panels, &mut blocks)
                    .map_err(|e| RunError::Invalid(format!("optimizer: `{name}`: {e}")))?;
            }
            blocks.into_par_iter().for_each(|b| b.run(rule));
            params.iter_mut().for_each(|p| p.grad.clear());
            Ok(())
        })?;
        if let Some(store) = panels {
            taken.into_iter().flatten().for_each(|t| store.put(t));
        }
    }
    Ok(())
}

/// What [`with_values`] calls with every var's values.
type WithValues<'f> = dyn FnMut(Vec<&mut [f32]>) -> Result<()> + 'f;

/// Run `f` over the values of every one of `vars` (distinct, f32,
/// contiguous) at once, each held under its storage's write lock for the
/// whole call.
fn with_values(vars: &[Var], f: &mut WithValues) -> Result<()> {
    let mut lent = Vec::with_capacity(vars.len());
    lend(vars, &mut lent, f)
}

fn lend(vars: &[Var], lent: &mut Vec<(*mut f32, usize)>, f: &mut WithValues) -> Result<()> {
    let Some((first, rest)) = vars.split_first() else {
        // SAFETY: each pointer and length is the slice of values of a
        // distinct storage (`update_all` holds each storage once), lent by
        // an enclosing `Lend::cpu_fwd` that holds the storage's write lock
        // until this call returns.
        let values = lent
            .iter()
            .map(|&(p, n)| unsafe { std::slice::from_raw_parts_mut(p, n) })
            .collect();
        return f(values);
    };
    let op = Lend {
        rest,
        lent: RefCell::new(lent),
        f: RefCell::new(f),
        result: RefCell::new(Ok(())),
    };
    first.as_tensor().inplace_op1(&op)?;
    op.result.into_inner()
}

/// The in-place op that lends one var's values to the ops of the rest.
struct Lend<'a, 'f> {
    rest: &'a [Var],
    lent: RefCell<&'a mut Vec<(*mut f32, usize)>>,
    f: RefCell<&'a mut WithValues<'f>>,
    result: RefCell<Result<()>>,
}

impl InplaceOp1 for Lend<'_, '_> {
    fn name(&self) -> &'static str {
        "optimizer-update"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("optimizer: parameters must be f32");
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("optimizer: a parameter is not contiguous");
        };
        let values = &mut v[a..b];
        let mut lent = self.lent.borrow_mut();
        lent.push((values.as_mut_ptr(), values.len()));
        let r = lend(self.rest, &mut lent, &mut **self.f.borrow_mut());
        lent.pop();
        *self.result.borrow_mut() = r;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        adamw::AdamWConfig, clip_factor, grad::Grad, sum_of_squares, Moments, Optimizer,
    };
    use super::*;
    use candle_core::{Device, Tensor};

    fn var(n: usize, seed: f32) -> Var {
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        Var::from_tensor(&Tensor::from_vec(v, n, &Device::Cpu).unwrap()).unwrap()
    }

    /// The one pass gives, bit for bit, the norm and the update of each
    /// parameter taken alone: sizes below one block, across the norm's
    /// and the update's blocks, and a single value.
    #[test]
    fn one_pass_matches_parameter_by_parameter() {
        let sizes = [3usize, 70_000, 384, 1, 40_000];
        let vars: Vec<Var> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| var(n, i as f32))
            .collect();
        let before: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| v.as_tensor().to_vec1().unwrap())
            .collect();
        let named = vars
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    format!("l{i}.{}", if i % 2 == 0 { "weight" } else { "bias" }),
                    v.clone(),
                )
            })
            .collect();
        let cfg = AdamWConfig::default();
        let mut opt = Optimizer::new(named, Box::new(cfg)).unwrap();
        let grads: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-2).collect())
            .collect();
        for (p, g) in opt.params.iter_mut().zip(&grads) {
            p.grad = Grad::Dense(g.clone());
        }
        let expected_sq: f64 = grads.iter().map(|g| sum_of_squares(g)).sum();
        let norm = opt.step(1e-3, 1.0).unwrap();
        assert_eq!(norm.to_bits(), expected_sq.sqrt().to_bits());
        let scale = clip_factor(norm, 1.0);
        for (i, (v, g)) in vars.iter().zip(&grads).enumerate() {
            let mut p = before[i].clone();
            let mut m = Moments::zeros(p.len(), 2);
            let at = StepAt {
                lr: 1e-3,
                decay: i % 2 == 0,
                grad_scale: scale,
                step: 1,
            };
            cfg.update(&mut p, g, m.as_mut(), &at);
            assert_eq!(v.as_tensor().to_vec1::<f32>().unwrap(), p, "parameter {i}");
            assert_eq!(opt.params[i].moments, m, "state of parameter {i}");
            assert!(opt.params[i].grad.values().iter().all(|&x| x == 0.0));
        }
    }

    /// A model of many tensors is updated in groups: the lending stays
    /// within a thread's default stack (2 MiB).
    #[test]
    fn many_parameters_fit_a_small_stack() {
        let run = || {
            let vars: Vec<Var> = (0..1100).map(|i| var(2, i as f32)).collect();
            let named = vars
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("p{i}.weight"), v.clone()))
                .collect();
            let mut opt = Optimizer::new(named, Box::new(AdamWConfig::default())).unwrap();
            for p in opt.params.iter_mut() {
                p.grad = Grad::Dense(vec![0.25, -0.5]);
            }
            let before = vars[1099].as_tensor().to_vec1::<f32>().unwrap();
            opt.step(1e-2, 1.0).unwrap();
            assert_ne!(vars[1099].as_tensor().to_vec1::<f32>().unwrap(), before);
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    /// A tensor trained under two names (a tied weight) cannot have its
    /// storage held twice: it is updated on its own, once per name.
    #[test]
    fn a_tensor_listed_twice_is_updated_on_its_own() {
        let v = var(8, 0.5);
        let w = var(4, 1.5);
        let named = vec![
            ("a.weight".to_string(), v.clone()),
            ("b.weight".to_string(), w.clone()),
            ("tied.weight".to_string(), v.clone()),
        ];
        let mut opt = Optimizer::new(named, Box::new(AdamWConfig::default())).unwrap();
        for p in opt.params.iter_mut() {
            let n = p.var.elem_count();
            p.grad = Grad::Dense(vec![0.5; n]);
        }
        let before = v.as_tensor().to_vec1::<f32>().unwrap();
        opt.step(1e-2, 0.0).unwrap();
        let after = v.as_tensor().to_vec1::<f32>().unwrap();
        assert!(after.iter().zip(&before).all(|(a, b)| a < b));
    }

    /// Weights whose panels were asked for get them written by the update,
    /// for their new values, and the update itself keeps its bits: shapes
    /// of one block of 64 rows, of many, of rows longer than a block, and
    /// ragged (a last panel narrower than 64 outputs, a run of rows shorter
    /// than 16). A weight whose panels nobody asked for gets none.
    #[test]
    fn panels_asked_for_are_written_for_the_new_values() {
        use crate::runtime::kernels::Panels;
        use crate::runtime::step::WeightPanels;
        use std::sync::Arc;
        let shapes = [
            (64usize, 48usize),
            (1536, 384),
            (384, 1536),
            (130, 33),
            (7, 5),
        ];
        let make = || -> Vec<Var> {
            shapes
                .iter()
                .enumerate()
                .map(|(i, &(o, n))| {
                    let v: Vec<f32> = (0..o * n)
                        .map(|k| (k as f32 * 0.013 + i as f32).sin())
                        .collect();
                    Var::from_tensor(&Tensor::from_vec(v, (o, n), &Device::Cpu).unwrap()).unwrap()
                })
                .collect()
        };
        let run = |vars: &[Var], store: Option<Arc<WeightPanels>>| {
            let named = vars
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("l{i}.weight"), v.clone()))
                .collect();
            let mut opt = Optimizer::new(named, Box::new(AdamWConfig::default())).unwrap();
            opt.panels = store;
            for step in 0..2 {
                for (p, v) in opt.params.iter_mut().zip(vars) {
                    let g = (0..v.elem_count())
                        .map(|k| ((k * 7 + step) % 13) as f32 * 1e-2 - 0.06)
                        .collect();
                    p.grad = Grad::Dense(g);
                }
                opt.step(1e-2, 0.0).unwrap();
            }
        };
        let plain = make();
        run(&plain, None);
        let with = make();
        let store = Arc::new(WeightPanels::default());
        // Panels asked for all but the last weight.
        for v in &with[..shapes.len() - 1] {
            assert!(store.get(v).unwrap().is_none(), "nothing written yet");
        }
        run(&with, Some(Arc::clone(&store)));
        for (i, (a, b)) in plain.iter().zip(&with).enumerate() {
            let (a, b) = (a.as_tensor(), b.as_tensor());
            let values = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                values,
                "weight {i}"
            );
        }
        assert_eq!(store.written(), shapes.len() - 1);
        for (i, v) in with.iter().enumerate() {
            let got = store.get(v).unwrap();
            if i + 1 == shapes.len() {
                assert!(got.is_none(), "panels nobody asked for");
                continue;
            }
            let (o, n) = shapes[i];
            let values = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = got.expect("written");
            assert!(
                got.as_slice() == Panels::pack(&values, o, n),
                "weight {i}: {o}x{n}"
            );
        }
        // A restored checkpoint sets the weights from elsewhere: every
        // panel is forgotten.
        store.forget();
        assert_eq!(store.written(), 0);

        // A table kept as touched rows gets no panels written, and loses
        // any it had: its update changes it all the same.
        let table = make().swap_remove(0);
        let named = vec![("table.weight".to_string(), table.clone())];
        let mut opt = Optimizer::new(named, Box::new(AdamWConfig::default())).unwrap();
        opt.panels = Some(Arc::clone(&store));
        opt.keep_rows(&table);
        assert!(store.get(&table).unwrap().is_none());
        let taken = store.take(table.as_tensor().id()).expect("asked for");
        store.put(taken);
        assert_eq!(store.written(), 1, "as if written before");
        if let Grad::Rows(r) = &mut opt.params[0].grad {
            r.add(3, &[0.5; 48], 1.0);
        }
        opt.step(1e-2, 0.0).unwrap();
        assert_eq!(store.written(), 0);
    }
}
