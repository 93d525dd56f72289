//! The explicit training step of the encoder on the CPU.
//!
//! Candle's autograd builds a graph of small ops for every forward and
//! walks it backward, writing a zeroed gradient for every node, copying
//! transposed operands, and materialising the dense gradient of the whole
//! token-embedding table. For the encoders it covers, this module instead
//! writes the forward and backward of the Transformer out by hand: linear
//! layers as `gemm` calls with explicit strides (no transposed copies; the
//! weight gradients accumulate straight into the optimizer's buffers),
//! attention with its own backward, layer norm, GELU and dropout with the
//! same dropout masks as the autograd path, and the token-embedding
//! gradient kept as the rows the batch touched.
//!
//! The two paths meet at the Transformer's output: the explicit forward
//! returns the token embeddings as a fresh leaf [`Var`] and records a
//! [`Tape`] in the forward context. Autograd runs what sits on top
//! (pooling, Dense, the loss) and yields that leaf's gradient;
//! [`Tapes::backward`] then runs the tapes' backward with it, the columns
//! of a batch together, and hands the encoder's gradients to a
//! [`GradSink`] (the optimizer).
//!
//! A context records tapes only when built with
//! [`Ctx::train_explicit`](crate::runtime::ops::Ctx::train_explicit), by the
//! trainer's plain step, which then runs the tapes; every other caller
//! (GradCache, the layer losses, gradient checks) keeps the autograd path.
//! `STPIPE_AUTOGRAD=1` in the environment turns the explicit step off (for
//! comparisons).

pub(crate) mod attention;
pub(crate) mod bert;
pub mod bf16;
pub(crate) mod layer;
pub(crate) mod layer_back;
pub mod matmul;
pub(crate) mod rows;
pub(crate) mod weight_panels;

pub use weight_panels::WeightPanels;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{backprop::GradStore, CpuStorage, Storage, Tensor, TensorId, Var};

use super::error::{Error, Result};

/// Where the gradients of the explicit backward go.
pub trait GradSink: Send {
    /// The accumulation buffer of `var` (as long as the tensor) and the
    /// factor every gradient is added with; `None` when `var` is not
    /// trained, so its gradient need not be computed.
    fn buffer(&mut self, var: &Var) -> Option<(&mut [f32], f32)>;

    /// [`GradSink::buffer`] of each of `vars` at once (disjoint borrows,
    /// so that the weight gradients of a layer can be computed at the
    /// same time); a variable named twice gets its buffer at its first
    /// place only.
    fn buffers(&mut self, vars: &[Var]) -> Vec<Buf<'_>>;

    /// Add gradient rows of a `[rows, width]` table: `grads[k]` (a row of
    /// `width` values) belongs to row `ids[k]`; ids may repeat.
    fn add_rows(&mut self, var: &Var, ids: &[u32], grads: &[f32]);
}

/// A trained variable's gradient buffer and the factor its gradients are
/// added with (`None`: not trained).
pub type Buf<'a> = Option<(&'a mut [f32], f32)>;

/// `buf += factor * g` (the factor is the buffer's), when there is one.
pub(crate) fn add_into(buf: &mut Buf, g: &[f32]) {
    if let Some((buf, scale)) = buf {
        let scale = *scale;
        buf.iter_mut().zip(g).for_each(|(b, g)| *b += scale * g);
    }
}

/// `buffer(var) += factor * g` when `var` is trained.
pub(crate) fn add_dense(sink: &mut dyn GradSink, var: &Var, g: &[f32]) {
    if let Some((buf, scale)) = sink.buffer(var) {
        buf.iter_mut().zip(g).for_each(|(b, g)| *b += scale * g);
    }
}

/// A recorded explicit forward, by architecture: what its backward needs.
/// (An architecture with an explicit step of its own adds its variant
/// here and its group backward in [`Tapes::backward`].)
pub(crate) enum Tape {
    Bert(bert::BertTape),
}

impl Tape {
    /// The output leaf whose gradient the backward starts from.
    fn output(&self) -> &Var {
        match self {
            Tape::Bert(t) => t.output(),
        }
    }
}

/// The tapes of one forward context, and the weight layouts its forwards
/// share: within one context (one batch of a training step) the weights do
/// not change, so a transposed or packed copy made for the first column's
/// forward serves every other column's, and their backward passes.
///
/// The columns of a batch may run their forwards at the same time (each
/// in a context of [`Ctx::columns`](crate::runtime::ops::Ctx::columns)):
/// tapes are kept with their column and run backward in column order, so
/// the gradients are summed in the same order whichever forward ended
/// first.
#[derive(Default)]
pub struct Tapes {
    tapes: Mutex<Vec<(usize, Tape)>>,
    layouts: Mutex<LayoutCache>,
    /// Whether the forwards of this context run side by side, one per
    /// thread (set by the encoder's `prepare_explicit`).
    side_by_side: std::sync::atomic::AtomicBool,
    /// The panels the optimizer writes, where the trainer hands them over.
    panels: std::sync::OnceLock<Arc<WeightPanels>>,
}

/// Derived weight layouts by weight and kind (each kind of one type).
type LayoutCache = HashMap<(TensorId, Layout), Arc<dyn std::any::Any + Send + Sync>>;

/// A derived layout of a weight, cached per context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// `[out, in]` transposed to `[in, out]`, for the forward's products.
    Transposed,
    /// q, k and v weights one above the other, `[3 * hidden, hidden]`,
    /// transposed: `[hidden, 3 * hidden]` (keyed by the query weight).
    PackedQkvTransposed,
    /// `[out, in]` as the bf16 right operand `[in, out]` of the forward's
    /// `x @ w^T` ([`bf16::PackedB`]).
    Bf16Forward,
    /// `[out, in]` as the bf16 right operand of the backward's `dy @ w`.
    Bf16Backward,
}

impl std::fmt::Debug for Tapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tapes")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Tapes {
    /// Mark the forwards of this context as running side by side (each
    /// product on one core), before any of them starts.
    pub(crate) fn set_side_by_side(&self) {
        self.side_by_side
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Read the linear weights from `panels` (the optimizer's) where they
    /// are there.
    pub(crate) fn set_weight_panels(&self, panels: Arc<WeightPanels>) {
        // Set once, when the context is made.
        let _ = self.panels.set(panels);
    }

    /// The optimizer's weight panels, when handed over.
    pub(crate) fn weight_panels(&self) -> Option<&WeightPanels> {
        self.panels.get().map(Arc::as_ref)
    }

    pub(crate) fn side_by_side(&self) -> bool {
        self.side_by_side.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keep `tape` for the backward, as column `order`'s.
    pub(crate) fn record(&self, order: usize, tape: Tape) {
        lock(&self.tapes).push((order, tape));
    }

    /// The tapes in column order (a column's own in recording order).
    fn take(&self) -> Vec<Tape> {
        let mut tapes = std::mem::take(&mut *lock(&self.tapes));
        tapes.sort_by_key(|(order, _)| *order);
        tapes.into_iter().map(|(_, t)| t).collect()
    }

    /// The `layout` of the weight `key`, made by `make` on first use in
    /// this context. (`make` runs outside the lock: it may use rayon, whose
    /// threads must never wait on a lock another task of theirs holds.
    /// Forwards that run at the same time make the layouts first, see
    /// [`crate::runtime::encoder::SentenceEncoder::prepare_step`]; should
    /// two make the same one, both are equal and the first is kept.)
    pub(crate) fn layout<T: std::any::Any + Send + Sync>(
        &self,
        key: &Var,
        layout: Layout,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        let k = (key.as_tensor().id(), layout);
        let found = lock(&self.layouts).get(&k).map(Arc::clone);
        let v = match found {
            Some(v) => v,
            None => {
                let v: Arc<dyn std::any::Any + Send + Sync> = Arc::new(make()?);
                Arc::clone(lock(&self.layouts).entry(k).or_insert(v))
            }
        };
        v.downcast::<T>().map_err(|_| {
            Error::Msg(format!(
                "explicit step: the {layout:?} layout was made as another type"
            ))
        })
    }

    /// Run every recorded backward with the output gradients of `grads`;
    /// a tape whose output the loss did not use contributes nothing. The
    /// tapes are consumed.
    ///
    /// The tapes of one model (the columns of a batch) run backward as one
    /// group, layer by layer (see [`bert::backward`]): each weight's
    /// gradient is added column after column, in column order, straight
    /// into the sink, by the same products whatever the thread count, so
    /// the thread count never changes what is trained.
    pub fn backward(&self, grads: &GradStore, sink: &mut dyn GradSink) -> Result<()> {
        let mut groups: Vec<Vec<(bert::BertTape, Vec<f32>)>> = Vec::new();
        for tape in self.take() {
            let Some(g) = grads.get(tape.output().as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            match tape {
                Tape::Bert(t) => match groups.iter_mut().find(|gr| gr[0].0.same_model(&t)) {
                    Some(group) => group.push((t, g)),
                    None => groups.push(vec![(t, g)]),
                },
            }
        }
        for group in groups {
            bert::backward(group, sink, self)?;
        }
        Ok(())
    }
}

/// Whether the explicit step may run (not turned off by `STPIPE_AUTOGRAD`).
pub fn enabled() -> bool {
    !std::env::var("STPIPE_AUTOGRAD").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A tensor's values as an f32 slice, borrowed from its storage (no copy)
/// for as long as the guard lives.
pub(crate) struct F32Ref<'a> {
    guard: candle_core::StorageRef<'a>,
    start: usize,
    len: usize,
}

impl std::ops::Deref for F32Ref<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.start..self.start + self.len],
            // `read` admits only CPU f32 storage.
            _ => &[],
        }
    }
}

/// `w` `[rows, cols]` transposed to `[cols, rows]`: bands of 16 output
/// rows in parallel, each moved as 16 x 16 tiles through a local buffer, so
/// that every read and every write is a run of 16 contiguous values.
///
/// The output is written straight into the vector's spare capacity: a
/// zeroed vector would first be cleared by one thread (some 40 MB a step
/// for a small model's layers, reused heap memory that calloc must clear),
/// only to be overwritten.
pub(crate) fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    const T: usize = 16;
    let n = rows * cols;
    assert_eq!(
        w.len(),
        n,
        "transpose: {} values for {rows} x {cols}",
        w.len()
    );
    let mut out: Vec<f32> = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(T * rows)
        .enumerate()
        .for_each(|(band, o): (usize, &mut [MaybeUninit<f32>])| {
            let c0 = band * T;
            let width = o.len() / rows;
            let mut tile = [[0f32; T]; T];
            for r0 in (0..rows).step_by(T) {
                let height = T.min(rows - r0);
                for (rr, t) in tile.iter_mut().enumerate().take(height) {
                    let r = r0 + rr;
                    t[..width].copy_from_slice(&w[r * cols + c0..r * cols + c0 + width]);
                }
                for k in 0..width {
                    let dst = &mut o[k * rows + r0..k * rows + r0 + height];
                    for (d, t) in dst.iter_mut().zip(&tile) {
                        d.write(t[k]);
                    }
                }
            }
        });
    // SAFETY: the bands cover `0..n` (each `T * rows` values, the last
    // `width * rows`), and within a band every `(k, r)` for `k < width`
    // and `r < rows` was written above.
    unsafe { out.set_len(n) };
    out
}

/// Borrow the values of a contiguous f32 CPU tensor.
pub(crate) fn read(t: &Tensor) -> Result<F32Ref<'_>> {
    let (guard, layout) = t.storage_and_layout();
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(Error::Msg(
            "explicit step: a weight is not contiguous".into(),
        ));
    };
    match &*guard {
        Storage::Cpu(CpuStorage::F32(v)) if end <= v.len() => {}
        _ => {
            return Err(Error::Msg(
                "explicit step: a weight is not an f32 CPU tensor".into(),
            ))
        }
    }
    Ok(F32Ref {
        guard,
        start,
        len: end - start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_is_made_once_and_read_back_as_its_own_type_only() {
        let tapes = Tapes::default();
        let w = Var::zeros((2, 2), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let made = tapes
            .layout(&w, Layout::Transposed, || Ok(vec![1f32, 2.0]))
            .unwrap();
        let again = tapes
            .layout(&w, Layout::Transposed, || -> Result<Vec<f32>> {
                panic!("made a second time")
            })
            .unwrap();
        assert!(Arc::ptr_eq(&made, &again));
        // Another kind of the same weight is its own entry.
        let other = tapes.layout(&w, Layout::Bf16Forward, || Ok(7u8)).unwrap();
        assert_eq!(*other, 7);
        // Asked for as another type: an error, not a panic.
        let wrong = tapes.layout(&w, Layout::Transposed, || Ok(0u8));
        assert!(matches!(wrong, Err(Error::Msg(m)) if m.contains("another type")));
    }

    #[test]
    fn transpose_of_uneven_shapes() {
        for (r, c) in [(1, 1), (3, 50), (37, 16), (64, 33)] {
            let w: Vec<f32> = (0..r * c).map(|i| i as f32).collect();
            let t = transpose(&w, r, c);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t[j * r + i], w[i * c + j]);
                }
            }
        }
    }
}
