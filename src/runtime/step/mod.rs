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
//! [`Tapes::backward`] then runs each tape's backward with it and hands the
//! encoder's gradients to a [`GradSink`] (the optimizer).
//!
//! A context records tapes only when built with
//! [`Ctx::train_explicit`](crate::runtime::ops::Ctx::train_explicit), by the
//! trainer's plain step, which then runs the tapes; every other caller
//! (GradCache, the layer losses, gradient checks) keeps the autograd path.
//! `STPIPE_AUTOGRAD=1` in the environment turns the explicit step off (for
//! comparisons).

pub(crate) mod attention;
pub(crate) mod bert;
pub(crate) mod layer;
pub mod matmul;
pub(crate) mod rows;

use std::sync::Mutex;

use candle_core::{backprop::GradStore, CpuStorage, Storage, Tensor, Var};

use super::error::{Error, Result};

/// Where the gradients of the explicit backward go.
pub trait GradSink {
    /// The accumulation buffer of `var` (as long as the tensor) and the
    /// factor every gradient is added with; `None` when `var` is not
    /// trained, so its gradient need not be computed.
    fn buffer(&mut self, var: &Var) -> Option<(&mut [f32], f32)>;

    /// Add gradient rows of a `[rows, width]` table: `grads[k]` (a row of
    /// `width` values) belongs to row `ids[k]`; ids may repeat.
    fn add_rows(&mut self, var: &Var, ids: &[u32], grads: &[f32]);
}

/// `buffer(var) += factor * g` when `var` is trained.
pub(crate) fn add_dense(sink: &mut dyn GradSink, var: &Var, g: &[f32]) {
    if let Some((buf, scale)) = sink.buffer(var) {
        buf.iter_mut().zip(g).for_each(|(b, g)| *b += scale * g);
    }
}

/// A recorded explicit forward: its output leaf and the backward that
/// turns the output's gradient into the encoder's.
pub trait Tape: Send {
    fn output(&self) -> &Var;
    fn backward(self: Box<Self>, grad: Vec<f32>, sink: &mut dyn GradSink) -> Result<()>;
}

/// The tapes of one forward context.
#[derive(Default)]
pub struct Tapes(Mutex<Vec<Box<dyn Tape>>>);

impl std::fmt::Debug for Tapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tapes")
    }
}

impl Tapes {
    pub fn record(&self, tape: Box<dyn Tape>) {
        match self.0.lock() {
            Ok(mut g) => g.push(tape),
            Err(p) => p.into_inner().push(tape),
        }
    }

    fn take(&self) -> Vec<Box<dyn Tape>> {
        match self.0.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    /// Run every recorded backward, in recording order, with the output
    /// gradients of `grads`; a tape whose output the loss did not use
    /// contributes nothing. The tapes are consumed.
    pub fn backward(&self, grads: &GradStore, sink: &mut dyn GradSink) -> Result<()> {
        for tape in self.take() {
            let Some(g) = grads.get(tape.output().as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            tape.backward(g, sink)?;
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
