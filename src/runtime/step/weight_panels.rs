//! The linear weights of the explicit step in the layout of `gemm`'s
//! microkernel ([`Panels`]), written by the optimizer as it updates them.
//!
//! Handed `x @ w^T`, `gemm` first copies ("packs") `w` into panels of
//! its microkernel's rows; in a training step every weight was packed so
//! by every column's forward. Packed once per step by the step itself, the
//! copy cost as much as it saved: right after the optimizer has written
//! them, the weights (42 MB for MiniLM's layers) are in memory, not in
//! cache. So the optimizer writes the panels itself, a few rows at a time
//! right after updating them (`train::optim`), while those rows are in
//! the cache; the forwards of the next step read them as they are.
//!
//! A weight's panels are asked for by the forward ([`WeightPanels::get`]),
//! written by each update of the optimizer that owns this store, and
//! invalid from the start of an update until it has written them. Nothing
//! else may change a weight while its optimizer trains it; where something
//! does (a checkpoint restored), the optimizer forgets every panel
//! ([`WeightPanels::forget`]). Debug builds (the test suite) compare every
//! panel handed out with the weight packed afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{TensorId, Var};

use crate::runtime::error::Result;
use crate::runtime::kernels::{trained_panels_available, Panels};

/// One weight's entry.
struct Entry {
    out: usize,
    inp: usize,
    /// The panels of the weight's current values; `None` until written.
    panels: Option<Arc<PanelBuf>>,
}

/// 16 values on a cache line of their own.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; 16]);

/// Panels' values from the start of a cache line, so that whole lines of
/// them can be written past the caches.
pub(crate) struct PanelBuf {
    lines: Vec<Line>,
    len: usize,
}

impl PanelBuf {
    fn zeros(len: usize) -> Self {
        PanelBuf {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: a `Line` is 16 f32 and nothing else (`repr(C)`, 64
        // bytes), so the lines are `16 * lines.len() >= len` contiguous
        // f32, borrowed with `self`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, borrowed mutably with `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// The panels of the weights a forward asked for, by weight.
#[derive(Default)]
pub struct WeightPanels {
    entries: Mutex<HashMap<TensorId, Entry>>,
}

impl std::fmt::Debug for WeightPanels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeightPanels")
    }
}

/// A weight's panels taken out for an update: the buffer to write them
/// into (`out * inp` values) and the weight's shape.
pub(crate) struct Taken {
    pub(crate) id: TensorId,
    pub(crate) data: PanelBuf,
    pub(crate) out: usize,
    pub(crate) inp: usize,
}

impl WeightPanels {
    /// A store, where the panels serve (where `gemm` runs its AVX-512
    /// kernels); `None` elsewhere.
    pub fn new() -> Option<Arc<Self>> {
        trained_panels_available().then(|| Arc::new(WeightPanels::default()))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<TensorId, Entry>> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The panels of `w` (`[out, in]`, f32) for its current values, where
    /// the optimizer has written them; else `None`, and `w` is asked for:
    /// the next update writes its panels.
    pub(crate) fn get(&self, w: &Var) -> Result<Option<Arc<PanelBuf>>> {
        let (out, inp) = w.as_tensor().dims2()?;
        let found = {
            let mut entries = self.entries();
            let e = entries.entry(w.as_tensor().id()).or_insert(Entry {
                out,
                inp,
                panels: None,
            });
            e.panels.clone()
        };
        #[cfg(debug_assertions)]
        if let Some(p) = &found {
            let fresh = Panels::pack(&super::read(w.as_tensor())?, out, inp);
            assert!(
                p.as_slice() == fresh,
                "weight panels: stale panels of a {out}x{inp} weight (changed outside its optimizer's update)"
            );
        }
        Ok(found)
    }

    /// The buffer of the weight `id` for an update, when its panels were
    /// asked for: they are invalid until [`WeightPanels::put`] returns it.
    pub(crate) fn take(&self, id: TensorId) -> Option<Taken> {
        let mut entries = self.entries();
        let e = entries.get_mut(&id)?;
        let n = e.out * e.inp;
        // The previous panels' buffer, unless a forward still holds it.
        let data = match e.panels.take().map(Arc::try_unwrap) {
            Some(Ok(v)) if v.len == n => v,
            _ => PanelBuf::zeros(n),
        };
        Some(Taken {
            id,
            data,
            out: e.out,
            inp: e.inp,
        })
    }

    /// Panels written in full for the weight's new values.
    pub(crate) fn put(&self, t: Taken) {
        if let Some(e) = self.entries().get_mut(&t.id) {
            e.panels = Some(Arc::new(t.data));
        }
    }

    /// How many weights have their panels written for their current values.
    pub fn written(&self) -> usize {
        self.entries()
            .values()
            .filter(|e| e.panels.is_some())
            .count()
    }

    /// Every panel invalid (the weights were set from elsewhere).
    pub(crate) fn forget(&self) {
        self.entries().values_mut().for_each(|e| e.panels = None);
    }
}

/// A weight's panels, read as [`Panels`].
pub(crate) fn view<'a>(data: &'a PanelBuf, w: &Var) -> Result<Panels<'a>> {
    let (out, inp) = w.as_tensor().dims2()?;
    let data = data.as_slice();
    Panels::view(data, out, inp).ok_or_else(|| {
        crate::runtime::error::Error::Msg(format!(
            "weight panels: {} values for a {out}x{inp} weight",
            data.len()
        ))
    })
}
