//! The accumulated gradient of a parameter (dense, or the rows of a table
//! a step touched), its in-place update, and the optimizer as the sink of
//! the explicit backward passes.

use std::collections::HashMap;

use candle_core::Var;

use super::{MomentsMut, Optimizer, Param, StepAt, UpdateRule};
use crate::runtime::kernels::{write_panel_rows as write_rows, PanelKernel};

/// The gradient accumulated for a parameter over a step's micro-batches.
#[derive(Debug)]
pub(super) enum Grad {
    /// As many values as the parameter.
    Dense(Vec<f32>),
    /// Only the rows of a `[rows, width]` table that a batch touched (the
    /// token embeddings: a batch looks up a few hundred of 30,000 rows);
    /// the others are zero.
    Rows(RowGrad),
}

#[derive(Debug, Default)]
pub(super) struct RowGrad {
    pub(super) width: usize,
    /// Where each touched row's values start in `values`, by row.
    slot: HashMap<u32, usize>,
    values: Vec<f32>,
    /// Rows whose optimizer state may be non-zero: those that ever had a
    /// gradient (or held state when restored). A row not in it has zero
    /// state, which a rule may update without reading
    /// ([`UpdateRule::zero_state_update`]): most of a vocabulary is never
    /// seen in a run, and its rows then cost a third of the traffic.
    live: Vec<bool>,
}

impl RowGrad {
    /// No rows yet, of `width` values each.
    pub(super) fn new(width: usize) -> Self {
        RowGrad {
            width,
            ..RowGrad::default()
        }
    }

    /// The dense gradient of a table of `len` values that these rows are of.
    pub(super) fn to_dense(&self, len: usize) -> Vec<f32> {
        let w = self.width;
        let mut dense = vec![0f32; len];
        for (&row, &at) in &self.slot {
            dense[row as usize * w..(row as usize + 1) * w]
                .copy_from_slice(&self.values[at..at + w]);
        }
        dense
    }

    /// Whether row `row`'s optimizer state may be non-zero.
    fn live(&self, row: u32) -> bool {
        self.live.get(row as usize).copied().unwrap_or(false)
    }

    /// Mark the rows whose state in `m` or `v` is non-zero (after a
    /// restore).
    pub(super) fn mark_live(&mut self, m: &[f32], v: &[f32]) {
        let w = self.width.max(1);
        let rows = m.len().max(v.len()) / w;
        let nonzero = |b: &[f32], r: usize| {
            b.get(r * w..(r + 1) * w)
                .is_some_and(|x| x.iter().any(|&x| x != 0.0))
        };
        self.live = (0..rows).map(|r| nonzero(m, r) || nonzero(v, r)).collect();
    }

    /// `row += scale * g`.
    pub(super) fn add(&mut self, row: u32, g: &[f32], scale: f32) {
        if self.live.len() <= row as usize {
            self.live.resize(row as usize + 1, false);
        }
        self.live[row as usize] = true;
        let next = self.values.len();
        let at = *self.slot.entry(row).or_insert(next);
        if at == next {
            self.values.resize(next + self.width, 0.0);
        }
        let dst = &mut self.values[at..at + self.width];
        dst.iter_mut().zip(g).for_each(|(d, g)| *d += scale * g);
    }

    fn clear(&mut self) {
        self.slot.clear();
        self.values.clear();
    }
}

/// Values per parallel task of an update.
const UPDATE_BLOCK: usize = 1 << 15;

/// A run of whole rows of one parameter's values with their gradient and
/// state: one task of an optimizer step ([`super::update`]). Every rule is
/// elementwise, so the result does not depend on how a step is cut.
pub(super) struct Block<'a> {
    param: &'a mut [f32],
    state: MomentsMut<'a>,
    grad: BlockGrad<'a>,
    at: StepAt,
    /// Where the block's rows go in the weight's panels, if asked for.
    panels: Option<PanelRows<'a>>,
}

/// The panels of a weight `[out, inp]` from row `first` on (a multiple of
/// 64), as many rows as a block holds.
pub(super) struct PanelRows<'a> {
    data: &'a mut [f32],
    first: usize,
    out: usize,
    inp: usize,
}

/// Rows updated and then written into the panels at a time: 16 rows of
/// the weight are 16 values of each run of 64 in the panels, a cache line.
const PANEL_ROWS: usize = 16;

/// The rows of the panels' blocks: groups of 64 (a panel each), so that
/// each block writes a contiguous run of the panels, together about
/// [`UPDATE_BLOCK`] values.
fn panel_block_rows(inp: usize) -> usize {
    64 * (UPDATE_BLOCK / (64 * inp.max(1))).max(1)
}

enum BlockGrad<'a> {
    /// The block's run of a dense gradient, zeroed once used (while it is
    /// still in the cache: a separate pass would read it all again).
    Dense(&'a mut [f32]),
    /// A row gradient, and the first row of the block.
    Rows { rows: &'a RowGrad, first: u32 },
}

/// Where the blocks of [`Grad::blocks`] take their gradient from.
enum Source<'a> {
    Dense(std::slice::ChunksMut<'a, f32>),
    Rows(&'a RowGrad),
}

impl Block<'_> {
    /// `rule`'s update of the block. Untouched rows of a row gradient are
    /// updated with a zero gradient: their moments decay and weight decay
    /// applies, as with torch's dense one.
    pub(super) fn run(self, rule: &dyn UpdateRule) {
        let Block {
            param,
            state,
            grad,
            at,
            panels,
        } = self;
        match (grad, panels) {
            (BlockGrad::Dense(g), None) => {
                rule.update(param, g, state, &at);
                g.fill(0.0);
            }
            (BlockGrad::Dense(g), Some(pr)) => {
                // A few rows at a time, each written into the panels while
                // it is still in the cache.
                let run = PANEL_ROWS * pr.inp.max(1);
                let (mut p, mut st, mut g, mut row) = (param, state, g, pr.first);
                while !p.is_empty() {
                    let len = run.min(p.len());
                    let (rows, tp) = p.split_at_mut(len);
                    let (sr, ts) = st.split_at(len);
                    let (gr, tg) = g.split_at_mut(len.min(g.len()));
                    rule.update(rows, gr, sr, &at);
                    gr.fill(0.0);
                    write_rows(
                        PanelKernel::layout(),
                        pr.data,
                        pr.first,
                        rows,
                        row,
                        pr.out,
                        pr.inp,
                    );
                    row += len / pr.inp.max(1);
                    (p, st, g) = (tp, ts, tg);
                }
            }
            (BlockGrad::Rows { rows: r, first }, _) => {
                let width = r.width.max(1);
                let zeros = vec![0f32; width];
                let (mut p, mut st, mut row) = (param, state, first);
                while !p.is_empty() {
                    let (pr, tp) = p.split_at_mut(width.min(p.len()));
                    let (sr, ts) = st.split_at(pr.len());
                    match r.slot.get(&row) {
                        Some(&off) => rule.update(pr, &r.values[off..off + pr.len()], sr, &at),
                        None if !r.live(row) && rule.zero_state_update(pr, &at) => {}
                        None => rule.update(pr, &zeros[..pr.len()], sr, &at),
                    }
                    p = tp;
                    st = ts;
                    row += 1;
                }
            }
        }
    }
}

impl Grad {
    /// The values the gradient holds: all of a dense one, the touched rows
    /// of a row gradient.
    pub(super) fn values(&self) -> &[f32] {
        match self {
            Grad::Dense(g) => g,
            Grad::Rows(r) => &r.values,
        }
    }

    /// The tasks of the update of `param` (with state `state`) by this
    /// gradient, in blocks of whole rows, added to `out`; an error where
    /// the gradient or the state does not fit the parameter.
    ///
    /// `panels` (a weight's panels, its `[out, inp]`; only with a dense
    /// gradient) get the rows of each block after its update: the blocks
    /// are then groups of 64 rows.
    pub(super) fn blocks<'a>(
        &'a mut self,
        param: &'a mut [f32],
        state: MomentsMut<'a>,
        at: StepAt,
        panels: Option<(&'a mut [f32], usize, usize)>,
        out: &mut Vec<Block<'a>>,
    ) -> Result<(), String> {
        let n = param.len();
        let (len_ok, width) = match &*self {
            Grad::Dense(g) => (g.len() == n, 1),
            Grad::Rows(r) => (r.width > 0 && n.is_multiple_of(r.width), r.width.max(1)),
        };
        let state_ok = |b: &[f32]| b.is_empty() || b.len() == n;
        if !len_ok || !state_ok(state.m) || !state_ok(state.v) {
            return Err("gradient or state of the wrong size".into());
        }
        let panels = match panels {
            // An empty weight has no panels to write.
            Some(_) if n == 0 => None,
            Some((data, o, i))
                if data.len() == n && o * i == n && matches!(self, Grad::Dense(_)) =>
            {
                Some((data, o, i))
            }
            Some(_) => return Err("weight panels that do not fit the parameter".into()),
            None => None,
        };
        let block = match &panels {
            Some((_, _, inp)) => panel_block_rows(*inp) * *inp,
            None => (UPDATE_BLOCK / width).max(1) * width,
        };
        let mut panel_chunks = panels.map(|(d, o, i)| (d.chunks_mut(block), o, i));
        let mut src = match self {
            Grad::Dense(g) => Source::Dense(g.chunks_mut(block)),
            Grad::Rows(r) => Source::Rows(r),
        };
        let (mut rest_p, mut rest_s, mut start) = (param, state, 0usize);
        while !rest_p.is_empty() {
            let len = block.min(rest_p.len());
            let (p, tail_p) = rest_p.split_at_mut(len);
            let (st, tail_s) = rest_s.split_at(len);
            let grad = match &mut src {
                // As long as the parameter (checked above): a chunk each.
                Source::Dense(d) => BlockGrad::Dense(d.next().unwrap_or_default()),
                Source::Rows(r) => BlockGrad::Rows {
                    rows: r,
                    first: (start / width) as u32,
                },
            };
            let panels = panel_chunks.as_mut().and_then(|(chunks, o, i)| {
                Some(PanelRows {
                    data: chunks.next()?,
                    first: start / *i,
                    out: *o,
                    inp: *i,
                })
            });
            out.push(Block {
                param: p,
                state: st,
                grad,
                at,
                panels,
            });
            rest_p = tail_p;
            rest_s = tail_s;
            start += len;
        }
        Ok(())
    }

    /// After a step: a row gradient forgets its rows (a dense one was
    /// zeroed block by block).
    pub(super) fn clear(&mut self) {
        if let Grad::Rows(r) = self {
            r.clear();
        }
    }
}

/// The optimizer as the sink of explicit backward passes.
pub(super) struct Sink<'a> {
    pub(super) opt: &'a mut Optimizer,
    pub(super) scale: f32,
}

impl crate::runtime::step::GradSink for Sink<'_> {
    fn buffer(&mut self, var: &Var) -> Option<(&mut [f32], f32)> {
        let &i = self.opt.by_var.get(&var.as_tensor().id())?;
        let p = &mut self.opt.params[i];
        p.make_dense();
        match &mut p.grad {
            Grad::Dense(g) => Some((g.as_mut_slice(), self.scale)),
            Grad::Rows(_) => None,
        }
    }

    fn buffers(&mut self, vars: &[Var]) -> Vec<crate::runtime::step::Buf<'_>> {
        let at: Vec<Option<usize>> = vars
            .iter()
            .map(|v| self.opt.by_var.get(&v.as_tensor().id()).copied())
            .collect();
        for &i in at.iter().flatten() {
            self.opt.params[i].make_dense();
        }
        let scale = self.scale;
        let mut params: Vec<Option<&mut Param>> = self.opt.params.iter_mut().map(Some).collect();
        at.into_iter()
            .map(|i| match &mut params.get_mut(i?)?.take()?.grad {
                Grad::Dense(g) => Some((g.as_mut_slice(), scale)),
                Grad::Rows(_) => None,
            })
            .collect()
    }

    fn add_rows(&mut self, var: &Var, ids: &[u32], grads: &[f32]) {
        let Some(&i) = self.opt.by_var.get(&var.as_tensor().id()) else {
            return;
        };
        let scale = self.scale;
        match &mut self.opt.params[i].grad {
            Grad::Rows(r) => {
                let w = r.width;
                for (&id, g) in ids.iter().zip(grads.chunks(w)) {
                    r.add(id, g, scale);
                }
            }
            Grad::Dense(d) => {
                let w = grads.len() / ids.len().max(1);
                for (&id, g) in ids.iter().zip(grads.chunks(w.max(1))) {
                    let dst = &mut d[id as usize * w..(id as usize + 1) * w];
                    dst.iter_mut().zip(g).for_each(|(d, g)| *d += scale * g);
                }
            }
        }
    }
}
