//! The rows of a mined source in each output format, and the statistics
//! the run logs (sentence-transformers prints the same table).

use super::select::Mined;
use super::Problem;
use crate::registry::choices::MinedFormat;
use crate::runtime::data::{Dataset, Example, Label};

/// How mined rows are laid out: the pairs' anchor and positive column
/// names, the format, and what the format adds.
pub struct Layout<'a> {
    pub anchor: &'a str,
    pub positive: &'a str,
    pub format: MinedFormat,
    /// labeled_pair rows carry the similarity instead of a 0/1 label;
    /// triplet and n_tuple rows gain a `score` list: the positive's
    /// similarity, then each negative's.
    pub scores: bool,
    pub num_negatives: usize,
}

impl Layout<'_> {
    /// The column names: the anchor and positive names, then `negative`
    /// (triplet), `negative_1..n` (n_tuple) or `label` / `score`
    /// (labeled_pair), as sentence-transformers names them; with scores,
    /// triplet and n_tuple end with the list `score` (sentence-transformers'
    /// `scores`: stpipe's label column is `label` or `score`).
    pub fn column_names(&self) -> Vec<String> {
        let mut cols = vec![self.anchor.to_string(), self.positive.to_string()];
        match self.format {
            MinedFormat::Triplet => cols.push("negative".into()),
            MinedFormat::NTuple => {
                cols.extend((1..=self.num_negatives).map(|i| format!("negative_{i}")))
            }
            MinedFormat::LabeledPair => {
                cols.push(if self.scores { "score" } else { "label" }.into())
            }
        }
        if self.scores && self.format != MinedFormat::LabeledPair {
            cols.push("score".into());
        }
        cols
    }

    /// The length of the `score` list of triplet and n_tuple rows.
    pub fn score_list_len(&self) -> Option<usize> {
        match self.format {
            _ if !self.scores => None,
            MinedFormat::Triplet => Some(2),
            MinedFormat::NTuple => Some(self.num_negatives + 1),
            MinedFormat::LabeledPair => None,
        }
    }
}

fn example(texts: Vec<&str>, label: Option<Label>) -> Example {
    Example {
        texts: texts.into_iter().map(str::to_string).collect(),
        label,
        line: 0,
    }
}

/// The mined rows: for each anchor (first appearance order) and each of
/// its positives, the negatives found, best first.
pub fn build(name: &str, layout: &Layout, pb: &Problem, m: &Mined) -> Dataset {
    let (f, scores, num_negatives) = (layout.format, layout.scores, layout.num_negatives);
    let mut examples = Vec::new();
    for (q, query) in pb.queries.iter().enumerate() {
        let found: Vec<(f32, &str)> = m.negatives[q]
            .iter()
            .filter(|c| c.0.is_finite())
            .filter_map(|c| c.1.map(|i| (c.0, pb.corpus[i])))
            .collect();
        match f {
            MinedFormat::Triplet => {
                for (j, &p) in pb.positives[q].iter().enumerate() {
                    let pos = m.positive_scores[q][j];
                    for &(s, neg) in &found {
                        let label = scores.then(|| Label::Scores(vec![pos, s]));
                        examples.push(example(vec![query, pb.corpus[p], neg], label));
                    }
                }
            }
            MinedFormat::NTuple => {
                if found.len() < num_negatives {
                    continue;
                }
                for (j, &p) in pb.positives[q].iter().enumerate() {
                    let mut t = vec![*query, pb.corpus[p]];
                    t.extend(found.iter().map(|(_, n)| *n));
                    let label = scores.then(|| {
                        let mut s = vec![m.positive_scores[q][j]];
                        s.extend(found.iter().map(|(s, _)| *s));
                        Label::Scores(s)
                    });
                    examples.push(example(t, label));
                }
            }
            MinedFormat::LabeledPair => {
                let label = |s: f32, l: i64| {
                    Some(if scores {
                        Label::Score(s)
                    } else {
                        Label::Class(l)
                    })
                };
                for (j, &p) in pb.positives[q].iter().enumerate() {
                    examples.push(example(
                        vec![query, pb.corpus[p]],
                        label(m.positive_scores[q][j], 1),
                    ));
                }
                for &(s, neg) in &found {
                    examples.push(example(vec![query, neg], label(s, 0)));
                }
            }
        }
    }
    let mut cols = layout.column_names();
    let label_column = (f == MinedFormat::LabeledPair || scores)
        .then(|| cols.pop())
        .flatten();
    Dataset {
        name: name.to_string(),
        text_columns: cols,
        label_column,
        examples,
        skipped: 0,
    }
}

fn mean(v: &[f32]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

/// One line on what mining found: counts, mean scores, what the filters
/// struck out and how many pairs fell short.
pub fn summary(name: &str, pb: &Problem, m: &Mined, ds: &Dataset, f: MinedFormat) -> String {
    let pos: Vec<f32> = m.positive_scores.iter().flatten().copied().collect();
    let neg: Vec<f32> = m
        .negatives
        .iter()
        .flatten()
        .map(|c| c.0)
        .filter(|s| s.is_finite())
        .collect();
    let mut s = format!(
        "data `{name}`: {} {} rows; mean similarity of positives {:.4}, of negatives {:.4} (range_max {})",
        ds.len(),
        f.name(),
        mean(&pos),
        mean(&neg),
        m.range_max
    );
    for (filter, n) in &m.skipped {
        s.push_str(&format!("; {n} candidate(s) struck out by {filter}"));
    }
    let want = m.num_negatives;
    let short = m
        .negatives
        .iter()
        .zip(&pb.positives)
        .filter(|(c, _)| c.iter().filter(|c| c.0.is_finite()).count() < want)
        .count();
    if short > 0 {
        s.push_str(&format!(
            "; {short} of {} anchors found fewer than {want} negatives (widen range_max, or loosen range_min, the margins, max_score)",
            pb.queries.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two anchors: `a` with positives p1, p2 and negatives n1, n2 found;
    /// `b` with positive p3 and only n1 found (the second slot empty).
    fn case() -> (Problem<'static>, Mined) {
        let pb = Problem::new(&[("a", "p1"), ("a", "p2"), ("b", "p3")], &["n1", "n2"]);
        // corpus: n1, n2, p1, p2, p3
        let m = Mined {
            negatives: vec![
                vec![(0.7, Some(0)), (0.6, Some(1))],
                vec![(0.5, Some(0)), (f32::NEG_INFINITY, None)],
            ],
            positive_scores: vec![vec![0.9, 0.8], vec![0.95]],
            skipped: vec![],
            range_max: 4,
            num_negatives: 2,
        };
        (pb, m)
    }

    fn build_as(f: MinedFormat, scores: bool, pb: &Problem, m: &Mined) -> Dataset {
        let layout = Layout {
            anchor: "q",
            positive: "d",
            format: f,
            scores,
            num_negatives: 2,
        };
        build("x", &layout, pb, m)
    }

    fn texts(ds: &Dataset) -> Vec<String> {
        ds.examples.iter().map(|e| e.texts.join(" ")).collect()
    }

    #[test]
    fn every_format_lays_out_anchors_positives_and_negatives_as_sentence_transformers() {
        let (pb, m) = case();
        assert_eq!(pb.corpus, ["n1", "n2", "p1", "p2", "p3"]);
        assert_eq!(pb.positives, [vec![2, 3], vec![4]]);
        assert_eq!(pb.max_positives, 2);
        let t = build_as(MinedFormat::Triplet, false, &pb, &m);
        assert_eq!(t.text_columns, ["q", "d", "negative"]);
        assert_eq!(
            texts(&t),
            ["a p1 n1", "a p1 n2", "a p2 n1", "a p2 n2", "b p3 n1"]
        );
        // n-tuples only for the pairs that found every negative.
        let n = build_as(MinedFormat::NTuple, false, &pb, &m);
        assert_eq!(n.text_columns, ["q", "d", "negative_1", "negative_2"]);
        assert_eq!(texts(&n), ["a p1 n1 n2", "a p2 n1 n2"]);
        // Labelled pairs: the positives (1), then the negatives (0).
        let l = build_as(MinedFormat::LabeledPair, false, &pb, &m);
        assert_eq!(
            (l.text_columns.clone(), l.label_column.as_deref()),
            (vec!["q".to_string(), "d".to_string()], Some("label"))
        );
        assert_eq!(texts(&l), ["a p1", "a p2", "a n1", "a n2", "b p3", "b n1"]);
        let labels: Vec<Option<Label>> = l.examples.iter().map(|e| e.label.clone()).collect();
        assert_eq!(
            labels[..3],
            [
                Some(Label::Class(1)),
                Some(Label::Class(1)),
                Some(Label::Class(0))
            ]
        );
        let s = build_as(MinedFormat::LabeledPair, true, &pb, &m);
        assert_eq!(s.label_column.as_deref(), Some("score"));
        assert_eq!(s.examples[1].label, Some(Label::Score(0.8)));
        assert_eq!(s.examples[5].label, Some(Label::Score(0.5)));
        // Score lists: the positive's similarity, then each negative's.
        let ts = build_as(MinedFormat::Triplet, true, &pb, &m);
        assert_eq!(
            (ts.text_columns.clone(), ts.label_column.as_deref()),
            (t.text_columns.clone(), Some("score"))
        );
        assert_eq!(texts(&ts), texts(&t));
        assert_eq!(ts.examples[2].label, Some(Label::Scores(vec![0.8, 0.7])));
        assert_eq!(ts.examples[4].label, Some(Label::Scores(vec![0.95, 0.5])));
        let ns = build_as(MinedFormat::NTuple, true, &pb, &m);
        assert_eq!(ns.text_columns, n.text_columns);
        assert_eq!(
            ns.examples[1].label,
            Some(Label::Scores(vec![0.8, 0.7, 0.6]))
        );
        let line = summary("x", &pb, &m, &t, MinedFormat::Triplet);
        assert!(
            line.contains("1 of 2 anchors found fewer than 2 negatives"),
            "{line}"
        );
    }
}
