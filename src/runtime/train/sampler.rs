//! Batch samplers: how an epoch's examples are cut into batches.
//!
//! * [`Sampler::Default`]: shuffle (or not), then consecutive batches; the
//!   last one may be short.
//! * [`Sampler::NoDuplicates`]: no text appears twice in a batch, as
//!   in-batch-negative losses need (sentence-transformers'
//!   `NoDuplicatesBatchSampler`): an example whose texts collide with the
//!   batch so far waits for a later batch.
//! * [`Sampler::GroupByLabel`]: every label in a batch appears at least twice,
//!   as batch triplet losses need.

use super::rng::Rng;
/// The sampler kinds are those the checker resolves pipelines to.
pub use crate::check::types::Sampler;
use std::collections::{BTreeMap, HashSet};

/// What a sampler may need to know of the examples.
pub struct SampleKeys<'a> {
    pub len: usize,
    /// Hashes of each example's texts (for `NoDuplicates`).
    pub texts: Option<&'a [Vec<u64>]>,
    /// Each example's integer label (for `GroupByLabel`).
    pub labels: Option<&'a [i64]>,
}

/// Why a sampler cannot run on a data source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    #[error("the no_duplicates sampler needs the examples' texts")]
    NoTexts,
    #[error("the group_by_label sampler needs an integer label column")]
    NoLabels,
    #[error("batch size must be at least 1")]
    ZeroBatch,
}

/// The batches of one epoch, as lists of example indices.
pub fn epoch_batches(
    sampler: Sampler,
    keys: &SampleKeys,
    batch_size: usize,
    shuffle: bool,
    rng: &mut Rng,
) -> Result<Vec<Vec<usize>>, SamplerError> {
    if batch_size == 0 {
        return Err(SamplerError::ZeroBatch);
    }
    let mut order: Vec<usize> = (0..keys.len).collect();
    if shuffle {
        rng.shuffle(&mut order);
    }
    match sampler {
        Sampler::Default => Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect()),
        Sampler::NoDuplicates => {
            let texts = keys.texts.ok_or(SamplerError::NoTexts)?;
            Ok(no_duplicates(&order, texts, batch_size))
        }
        Sampler::GroupByLabel => {
            let labels = keys.labels.ok_or(SamplerError::NoLabels)?;
            Ok(group_by_label(&order, labels, batch_size, shuffle, rng))
        }
    }
}

fn no_duplicates(order: &[usize], texts: &[Vec<u64>], batch_size: usize) -> Vec<Vec<usize>> {
    let mut remaining: Vec<usize> = order.to_vec();
    let mut batches = Vec::new();
    while !remaining.is_empty() {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut batch = Vec::with_capacity(batch_size);
        let mut left = Vec::with_capacity(remaining.len());
        for &i in &remaining {
            let clash = batch.len() >= batch_size || texts[i].iter().any(|h| seen.contains(h));
            if clash {
                left.push(i);
            } else {
                seen.extend(texts[i].iter().copied());
                batch.push(i);
            }
        }
        batches.push(batch);
        remaining = left;
    }
    batches
}

fn group_by_label(
    order: &[usize],
    labels: &[i64],
    batch_size: usize,
    shuffle: bool,
    rng: &mut Rng,
) -> Vec<Vec<usize>> {
    // Per label (in shuffled order), cut into chunks of two; an odd one out
    // joins its label's last chunk. A label seen once cannot pair and is
    // left out, as in sentence-transformers.
    let mut by_label: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for &i in order {
        by_label.entry(labels[i]).or_default().push(i);
    }
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    for idx in by_label.into_values() {
        if idx.len() < 2 {
            continue;
        }
        let mut label_chunks: Vec<Vec<usize>> = idx.chunks(2).map(<[usize]>::to_vec).collect();
        if let Some(last) = label_chunks.last() {
            if last.len() == 1 && label_chunks.len() > 1 {
                let odd = last[0];
                label_chunks.pop();
                if let Some(prev) = label_chunks.last_mut() {
                    prev.push(odd);
                }
            }
        }
        chunks.extend(label_chunks);
    }
    if shuffle {
        rng.shuffle(&mut chunks);
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::with_capacity(batch_size);
    for chunk in chunks {
        if !current.is_empty() && current.len() + chunk.len() > batch_size {
            batches.push(std::mem::take(&mut current));
        }
        current.extend(chunk);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_covers_everything_once() {
        let keys = SampleKeys {
            len: 10,
            texts: None,
            labels: None,
        };
        let b = epoch_batches(Sampler::Default, &keys, 4, true, &mut Rng::new(1)).unwrap();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let plain = epoch_batches(Sampler::Default, &keys, 4, false, &mut Rng::new(1)).unwrap();
        assert_eq!(plain[0], vec![0, 1, 2, 3]);
    }

    #[test]
    fn no_duplicates_keeps_texts_apart() {
        // Examples 0..8 share text 100 in pairs: (0,1), (2,3), ...
        let texts: Vec<Vec<u64>> = (0..8).map(|i| vec![100 + i / 2, 1000 + i]).collect();
        let keys = SampleKeys {
            len: 8,
            texts: Some(&texts),
            labels: None,
        };
        let b = epoch_batches(Sampler::NoDuplicates, &keys, 4, true, &mut Rng::new(5)).unwrap();
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        for batch in &b {
            let mut seen = HashSet::new();
            for &i in batch {
                for h in &texts[i] {
                    assert!(seen.insert(*h), "text {h} twice in {batch:?}");
                }
            }
            assert!(batch.len() <= 4);
        }
        let missing = SampleKeys {
            len: 2,
            texts: None,
            labels: None,
        };
        assert_eq!(
            epoch_batches(Sampler::NoDuplicates, &missing, 2, false, &mut Rng::new(0)),
            Err(SamplerError::NoTexts)
        );
    }

    #[test]
    fn group_by_label_pairs_labels() {
        let labels: Vec<i64> = vec![0, 0, 0, 1, 1, 2, 2, 2, 2, 3];
        let keys = SampleKeys {
            len: labels.len(),
            texts: None,
            labels: Some(&labels),
        };
        let b = epoch_batches(Sampler::GroupByLabel, &keys, 4, true, &mut Rng::new(9)).unwrap();
        for batch in &b {
            for &i in batch {
                let same = batch.iter().filter(|&&j| labels[j] == labels[i]).count();
                assert!(same >= 2, "label {} alone in {batch:?}", labels[i]);
            }
        }
        // Label 3 has a single example and cannot be used.
        let used: usize = b.iter().map(Vec::len).sum();
        assert_eq!(used, 9);
    }
}
