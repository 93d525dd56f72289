//! `split`: one part of a seeded random train/test split of a source, as
//! `datasets.Dataset.train_test_split(test_size=..., seed=...)` makes for
//! held-out evaluation. Two sources with the same source, `test_size` and
//! `seed` and different `part`s partition its rows.
//!
//! The test part has `ceil(test_size * rows)` rows, as in `datasets`. Rows
//! keep their order in the source (the trainer's sampler shuffles, and a
//! part read in file order is easier to inspect); which rows go where is
//! decided by a permutation drawn from the seed, so it does not depend on
//! the order the rows would be read in by anything else.

use super::{DataError, Dataset, TransformCx, TransformEntry, TransformInput};
use crate::check::types::Column;
use crate::data::ArgProblem;
use crate::registry::choices::SplitPart;
use crate::registry::{opt, req, ArgType::*, Component, Family};
use crate::runtime::train::rng::Rng;

pub const ENTRY: TransformEntry = TransformEntry {
    spec: Component {
        name: "split",
        family: Family::Transform,
        doc: "One part of a seeded random train/test split of a source (`datasets`' `train_test_split`): the test part has ceil(test_size x rows) rows, the training part the rest; rows keep their order in the source. Two sources that differ only in `part` partition the rows. Produces the source's columns.",
        args: &[
            req("source", Data, "the rows to split"),
            req("test_size", Prob, "the fraction of rows in the test part").above(0.0).below(1.0),
            req("part", Choice(SplitPart::NAMES), "which part this source keeps"),
            opt("seed", Count, "42", "the seed of the permutation that assigns rows to parts"),
        ],
        ..Component::BASE
    },
    columns: Some(columns),
    apply,
    recorded: false,
};

fn columns(t: &TransformInput) -> Result<Vec<Column>, ArgProblem> {
    let src = t.source("source").ok_or_else(|| ArgProblem {
        arg: "source",
        code: "unknown-name",
        message: "the source to split is not a checked data source".into(),
        help: "name a data source declared before this one".into(),
    })?;
    Ok(src.columns.iter().map(Column::derived_from).collect())
}

fn apply(cx: TransformCx) -> Result<Dataset, DataError> {
    let args = cx.args()?;
    let test_size = args.f64("test_size")?;
    let part: SplitPart = args.choice("part")?;
    let seed = args.i64("seed")? as u64;
    let mut ds = cx.input("source")?.clone();
    let n = ds.len();
    let keep = part_of(n, test_size, seed, part).ok_or_else(|| {
        cx.fail(
            format!(
                "a test size of {test_size} leaves an empty part of the {n} row(s) of `{}`",
                ds.name
            ),
            "both parts need at least one row: change test_size, or split a larger source",
        )
    })?;
    let examples = std::mem::take(&mut ds.examples);
    ds.examples = examples
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect();
    ds.name = cx.source.name.clone();
    Ok(ds)
}

/// Which of `n` rows belong to `part`; `None` when a part would be empty.
pub fn part_of(n: usize, test_size: f64, seed: u64, part: SplitPart) -> Option<Vec<bool>> {
    let n_test = (test_size * n as f64).ceil() as usize;
    if n_test == 0 || n_test >= n {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::derived(seed, "split").shuffle(&mut order);
    let mut is_test = vec![false; n];
    for &i in &order[..n_test] {
        is_test[i] = true;
    }
    Some(match part {
        SplitPart::Test => is_test,
        SplitPart::Train => is_test.into_iter().map(|t| !t).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_partition_the_rows_with_the_test_size_of_datasets() {
        let test = part_of(10, 0.25, 7, SplitPart::Test).unwrap();
        let train = part_of(10, 0.25, 7, SplitPart::Train).unwrap();
        // ceil(0.25 * 10) = 3, as `train_test_split` counts.
        assert_eq!(test.iter().filter(|t| **t).count(), 3);
        for (a, b) in test.iter().zip(&train) {
            assert_ne!(a, b, "every row is in exactly one part");
        }
        // The seed decides, and decides the same way every time.
        assert_eq!(part_of(10, 0.25, 7, SplitPart::Test).unwrap(), test);
        let others: Vec<Vec<bool>> = (0..8)
            .map(|s| part_of(10, 0.25, s, SplitPart::Test).unwrap())
            .collect();
        assert!(others.iter().any(|o| *o != test));
    }

    #[test]
    fn an_empty_part_is_refused() {
        assert!(part_of(1, 0.5, 1, SplitPart::Test).is_none());
        assert!(part_of(3, 0.999, 1, SplitPart::Train).is_none());
        assert!(part_of(0, 0.5, 1, SplitPart::Train).is_none());
        assert!(part_of(2, 0.5, 1, SplitPart::Train).is_some());
    }
}
