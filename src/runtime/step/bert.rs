//! The explicit step of the BERT family (`bert`, `roberta`, `xlm-roberta`,
//! `camembert`): embeddings (token + position + segment, layer norm,
//! dropout) and the post-norm layers of [`super::layer`]. The token
//! embeddings' gradient goes to the sink as the rows the batch touched.
//!
//! The batch is packed: padding rows are never computed (on the STS
//! benchmark at batch 16 they are over half of the padded batch). No real
//! token's value depends on a padding row (attention gives padded keys
//! probability 0, everything else is row by row), so the real tokens'
//! outputs and every gradient are those of the padded computation; the
//! output holds zeros at padded positions, which Pooling masks out.

use std::sync::Arc;

use candle_core::{DType, Tensor, Var};

use super::attention::Packed;
use super::layer::{self, LayerDrops, LayerTape, LayerVars, Ln};
use super::layer_back::{self, VARS};
use super::rows::{layer_norm, NormSaved};
use super::{add_dense, read, Buf, GradSink, Tape, Tapes};
use crate::registry::choices::Precision;
use crate::runtime::error::{Error, Result};
use crate::runtime::kernels::DropMask;
use crate::runtime::ops::{dropout_mask, Ctx};

/// The dropout probabilities of the model (each below 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dropouts {
    pub hidden: f64,
    pub attn: f64,
    pub attn_out: f64,
    pub ffn: f64,
}

/// Everything the explicit step reads of a BERT-family encoder: clones of
/// its variables (the same storage) and its shapes.
#[derive(Debug)]
pub(crate) struct BertStep {
    pub word: Var,
    pub position: Var,
    pub token_type: Var,
    pub norm: Ln,
    pub layers: Vec<LayerVars>,
    pub heads: usize,
    pub hidden: usize,
    /// The first position id (after the padding index for RoBERTa).
    pub position_start: u32,
    pub dropout: Dropouts,
}

/// What the embedding layer's forward keeps for its backward.
struct EmbedTape {
    ids: Vec<u32>,
    positions: Vec<u32>,
    types: Vec<u32>,
    norm: NormSaved,
    drop: Option<DropMask>,
}

/// One explicit forward of a BERT-family encoder.
pub(crate) struct BertTape {
    step: Arc<BertStep>,
    out: Var,
    packed: Packed,
    embed: EmbedTape,
    layers: Vec<LayerTape>,
    /// The linear layers' products' precision (the context's).
    precision: Precision,
}

/// Row `r` of a `[rows, h]` table.
fn row(t: &[f32], r: u32, h: usize) -> &[f32] {
    &t[r as usize * h..(r as usize + 1) * h]
}

/// Ids of a `[batch, seq]` tensor, each checked below `limit`.
fn ids_below(t: &Tensor, limit: usize, what: &str) -> Result<Vec<u32>> {
    let ids = t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= limit) {
        return Err(Error::Msg(format!(
            "{what} {bad} is outside the model's {limit} rows"
        )));
    }
    Ok(ids)
}

impl BertStep {
    /// The token embeddings `[batch, seq, hidden]` of the batch as a leaf
    /// variable, its tape recorded in `ctx` (which must record tapes).
    pub(crate) fn forward(
        self: &Arc<Self>,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let Some(tapes) = ctx.tapes() else {
            return Err(Error::Msg(
                "explicit step without a context that records it".into(),
            ));
        };
        let (b, s) = input_ids.dims2()?;
        let h = self.hidden;
        let mask = attention_mask
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let packed = Packed::new(&mask, b, s, h, self.heads);
        let Embedded {
            mut x,
            ids,
            positions,
            types,
        } = self.embed(&packed, input_ids, token_type_ids, s)?;
        let norm = layer_norm(
            &mut x,
            &read(self.norm.w.as_tensor())?,
            &read(self.norm.b.as_tensor())?,
            self.norm.eps,
        );
        let drop = dropout_mask(self.dropout.hidden, ctx);
        if let Some(m) = drop {
            m.apply_rows(&mut x, &packed.tokens, h);
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let drops = LayerDrops {
                attn: dropout_mask(self.dropout.attn, ctx),
                attn_out: dropout_mask(self.dropout.attn_out, ctx),
                ffn: dropout_mask(self.dropout.ffn, ctx),
            };
            let (y, tape) = layer::forward(l, x, &packed, drops, tapes, ctx.precision())?;
            x = y;
            layers.push(tape);
        }
        let x = unpack(&x, &packed, b * s, h);
        let out = Var::from_tensor(&Tensor::from_vec(x, (b, s, h), input_ids.device())?)?;
        let t = out.as_tensor().clone();
        tapes.record(
            ctx.order(),
            Tape::Bert(BertTape {
                step: Arc::clone(self),
                out,
                packed,
                embed: EmbedTape {
                    ids,
                    positions,
                    types,
                    norm,
                    drop,
                },
                layers,
                precision: ctx.precision(),
            }),
        );
        Ok(t)
    }

    /// The packed tokens' embeddings (word + position + token type), before
    /// the embeddings' layer norm, with the ids they were read at.
    fn embed(
        &self,
        packed: &Packed,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        s: usize,
    ) -> Result<Embedded> {
        let h = self.hidden;
        let (word, pos, typ) = (
            read(self.word.as_tensor())?,
            read(self.position.as_tensor())?,
            read(self.token_type.as_tensor())?,
        );
        let all_ids = ids_below(input_ids, word.len() / h, "token id")?;
        let ids: Vec<u32> = packed.tokens.iter().map(|&t| all_ids[t as usize]).collect();
        let types = match token_type_ids {
            Some(t) => {
                let all = ids_below(t, typ.len() / h, "token type id")?;
                packed.tokens.iter().map(|&t| all[t as usize]).collect()
            }
            None => vec![0; ids.len()],
        };
        let positions: Vec<u32> = packed
            .tokens
            .iter()
            .map(|&t| self.position_start + t % s.max(1) as u32)
            .collect();
        if let Some(p) = positions.iter().find(|&&p| p as usize >= pos.len() / h) {
            return Err(Error::Msg(format!(
                "position {p} is outside the model's positions"
            )));
        }
        let mut x = vec![0f32; packed.rows() * h];
        for (r, xr) in x.chunks_mut(h).enumerate() {
            let (w, p, y) = (
                row(&word, ids[r], h),
                row(&pos, positions[r], h),
                row(&typ, types[r], h),
            );
            for (((x, w), p), y) in xr.iter_mut().zip(w).zip(p).zip(y) {
                *x = w + p + y;
            }
        }
        Ok(Embedded {
            x,
            ids,
            positions,
            types,
        })
    }
}

impl BertStep {
    /// Mark `ctx`'s forwards as running side by side and make every
    /// layer's weight layouts for them (see [`layer::prepare`]).
    pub(crate) fn prepare(&self, ctx: &Ctx) -> Result<()> {
        if let Some(tapes) = ctx.tapes() {
            tapes.set_side_by_side();
            for l in &self.layers {
                layer::prepare(l, tapes, ctx.precision())?;
            }
        }
        Ok(())
    }
}

impl BertTape {
    pub(super) fn output(&self) -> &Var {
        &self.out
    }

    /// Whether `other` is a forward of the same model (the same weights).
    pub(super) fn same_model(&self, other: &BertTape) -> bool {
        Arc::ptr_eq(&self.step, &other.step)
    }

    /// The output's gradient `full` (the padded layout) at the packed
    /// rows: the padded positions' gradient is dropped with them (their
    /// outputs are constant zeros).
    fn packed_grad(&self, full: &[f32]) -> Vec<f32> {
        let h = self.step.hidden;
        let mut grad = vec![0f32; self.packed.rows() * h];
        for (g, &t) in grad.chunks_mut(h).zip(&self.packed.tokens) {
            g.copy_from_slice(&full[t as usize * h..(t as usize + 1) * h]);
        }
        grad
    }

    /// The embeddings' dropout and layer norm backward: `grad` becomes the
    /// gradient of the summed embeddings; returns the norm's weight
    /// gradient then its bias gradient.
    fn embed_back(&self, grad: &mut [f32]) -> Result<Vec<f32>> {
        let (step, e) = (&self.step, &self.embed);
        if let Some(m) = e.drop {
            m.apply_rows(grad, &self.packed.tokens, step.hidden);
        }
        layer_back::norm_back(&step.norm, grad, &e.norm)
    }
}

/// The backward of the forwards of one model (the columns of a batch, in
/// column order), each with its output's gradient in the padded layout.
///
/// Layer by layer from the top, the columns run their input gradients side
/// by side, and each layer's weight gradients become jobs of their own
/// ([`layer_back::weight_jobs`]) that run while the columns go on down.
/// Every gradient is added column after column, in column order, by the
/// same products on any thread, so the result does not depend on the
/// thread count. `layouts` (the forwards' context) keeps the weights
/// packed for bf16 products, once for every column.
pub(crate) fn backward(
    group: Vec<(BertTape, Vec<f32>)>,
    sink: &mut dyn GradSink,
    layouts: &Tapes,
) -> Result<()> {
    use rayon::prelude::*;
    let Some(step) = group.first().map(|(t, _)| Arc::clone(&t.step)) else {
        return Ok(());
    };
    let h = step.hidden;
    let prec = group[0].0.precision;
    let mut grads: Vec<Vec<f32>> = group.iter().map(|(t, g)| t.packed_grad(g)).collect();
    let tapes: Vec<BertTape> = group.into_iter().map(|(t, _)| t).collect();
    let vars: Vec<Var> = step.layers.iter().flat_map(|l| l.vars()).collect();
    let mut bufs = sink.buffers(&vars).into_iter();
    let mut per_layer = Vec::with_capacity(step.layers.len());
    for _ in &step.layers {
        let layer: Vec<Buf> = bufs.by_ref().take(VARS).collect();
        let layer: [Buf; VARS] = layer.try_into().map_err(|_| {
            Error::Msg("explicit step: a layer's gradient buffers are missing".into())
        })?;
        per_layer.push(layer);
    }
    let (tapes_ref, grads_ref) = (&tapes, &mut grads);
    let norms = rayon::scope(move |s| -> Result<Vec<Vec<f32>>> {
        let layers = step.layers.iter().zip(per_layer).enumerate().rev();
        for (i, (l, bufs)) in layers {
            let cols: Vec<&LayerTape> = tapes_ref.iter().map(|t| &t.layers[i]).collect();
            let packed = layer_back::packed_weights(l, layouts, prec)?;
            let deltas = grads_ref
                .par_iter_mut()
                .zip(tapes_ref)
                .zip(&cols)
                .map(|((g, t), lt)| {
                    layer_back::inputs(l, lt, g, &t.packed, (prec, packed.as_ref()))
                })
                .collect::<Result<Vec<_>>>()?;
            let inter = l.inter.w.as_tensor().dim(0)?;
            // The lowest layer's jobs are the last to run: cut into jobs
            // the size of a hidden x hidden weight, they end together.
            let split = i == 0;
            let deltas = Arc::new(deltas);
            for job in layer_back::weight_jobs(cols, deltas, bufs, (h, inter), prec, split) {
                s.spawn(move |_| job());
            }
        }
        grads_ref
            .par_iter_mut()
            .zip(tapes_ref)
            .map(|(g, t)| t.embed_back(g))
            .collect()
    })?;
    let step = &tapes[0].step;
    for ((t, grad), norm) in tapes.iter().zip(&grads).zip(&norms) {
        add_dense(sink, &step.norm.w, &norm[..h]);
        add_dense(sink, &step.norm.b, &norm[h..]);
        let e = &t.embed;
        for (var, ids) in [(&step.position, &e.positions), (&step.token_type, &e.types)] {
            if let Some((buf, scale)) = sink.buffer(var) {
                for (g, &r) in grad.chunks(h).zip(ids.iter()) {
                    let dst = &mut buf[r as usize * h..(r as usize + 1) * h];
                    dst.iter_mut().zip(g).for_each(|(d, g)| *d += scale * g);
                }
            }
        }
        sink.add_rows(&step.word, &e.ids, grad);
    }
    Ok(())
}

/// What [`BertStep::embed`] gives: the rows and the ids read.
struct Embedded {
    x: Vec<f32>,
    ids: Vec<u32>,
    positions: Vec<u32>,
    types: Vec<u32>,
}

/// Packed rows back to the padded layout of `tokens` positions, zeros at
/// padded positions.
fn unpack(x: &[f32], packed: &Packed, tokens: usize, h: usize) -> Vec<f32> {
    let mut full = vec![0f32; tokens * h];
    for (r, &t) in packed.tokens.iter().enumerate() {
        full[t as usize * h..(t as usize + 1) * h].copy_from_slice(&x[r * h..(r + 1) * h]);
    }
    full
}
