//! Exact similarity search over embeddings held in memory, a block of
//! queries at a time: what hard-negative mining and paraphrase mining share.
//! One block of scores (queries x corpus) is alive at a time, so memory
//! grows with the corpus, not with queries times corpus.

use candle_core::{Device, Tensor};

/// One block of scores of at most this many floats (64 MiB) by default.
pub const BLOCK_FLOATS: usize = 1 << 24;

/// Rows normalized to unit length, one after the other (a zero row stays
/// zero, as `util.normalize_embeddings` leaves it).
pub fn unit_rows(rows: Vec<Vec<f32>>) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    for r in rows {
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.extend(r.iter().map(|x| x / norm));
    }
    out
}

/// Queries scored per block: `chunk` if given, else as many as keep one
/// block within [`BLOCK_FLOATS`] (at least 1, at most 16,384).
pub fn block_rows(chunk: Option<usize>, corpus_rows: usize) -> usize {
    chunk
        .unwrap_or((BLOCK_FLOATS / corpus_rows.max(1)).clamp(1, 16384))
        .max(1)
}

/// Dot products of row-major `queries` with every row of `corpus` (both
/// of width `dim`; cosine similarities for unit rows), `chunk` queries at
/// a time: `each(q, scores)` sees query `q`'s scores against the whole
/// corpus, in query order.
pub fn score_blocks(
    queries: &[f32],
    corpus: &[f32],
    dim: usize,
    chunk: usize,
    mut each: impl FnMut(usize, &[f32]),
) -> candle_core::Result<()> {
    let dim = dim.max(1);
    let (nq, nc) = (queries.len() / dim, corpus.len() / dim);
    if nq == 0 || nc == 0 {
        return Ok(());
    }
    let corpus_t = Tensor::from_slice(corpus, (nc, dim), &Device::Cpu)?;
    let chunk = chunk.max(1);
    for start in (0..nq).step_by(chunk) {
        let end = (start + chunk).min(nq);
        let q = Tensor::from_slice(
            &queries[start * dim..end * dim],
            (end - start, dim),
            &Device::Cpu,
        )?;
        let scores = q.matmul(&corpus_t.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        for (row, qi) in (start..end).enumerate() {
            each(qi, &scores[row * nc..(row + 1) * nc]);
        }
    }
    Ok(())
}

/// Best first, ties by position.
fn better(a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// The `k` highest of `scores` as (score, position), best first, ties by
/// position (fewer when there are fewer scores). `buf` is scratch space
/// reused between calls.
pub fn top_k(scores: &[f32], k: usize, buf: &mut Vec<(f32, usize)>) -> Vec<(f32, usize)> {
    buf.clear();
    buf.extend(scores.iter().copied().zip(0..));
    let k = k.min(buf.len());
    if k == 0 {
        return Vec::new();
    }
    if k < buf.len() {
        buf.select_nth_unstable_by(k - 1, better);
    }
    let mut out = buf[..k].to_vec();
    out.sort_by(better);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_see_every_score_and_top_k_breaks_ties_by_position() {
        // Three unit queries against four corpus rows, blocks of 2.
        let q = unit_rows(vec![vec![1.0, 0.0], vec![0.0, 2.0], vec![1.0, 1.0]]);
        let c = unit_rows(vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 0.0],
            vec![-1.0, 0.0],
        ]);
        let mut seen = Vec::new();
        score_blocks(&q, &c, 2, 2, |i, s| seen.push((i, s.to_vec()))).unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1].1, vec![0.0, 1.0, 0.0, 0.0]);
        let mut buf = Vec::new();
        let top = top_k(&seen[0].1, 3, &mut buf);
        assert_eq!(top.iter().map(|t| t.1).collect::<Vec<_>>(), vec![0, 2, 1]);
        assert_eq!(top_k(&seen[0].1, 9, &mut buf).len(), 4);
        assert!(top_k(&[], 3, &mut buf).is_empty());
        assert_eq!(block_rows(None, 1 << 20), 16);
        assert_eq!(block_rows(Some(0), 10), 1);
    }
}
