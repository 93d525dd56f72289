//! The run directory's `metrics.jsonl` read back as series to plot: loss
//! per objective and learning rate per step, and every evaluator's metrics
//! at the steps it ran.
//!
//! Steps count from 0 in each stage; the series put the stages one after
//! another (a stage's step `k` is plotted at the steps of the stages before
//! it plus `k`), so that a two-stage run reads as one curve with the stage
//! boundaries marked.

use std::collections::BTreeMap;
use std::path::Path;

/// Points `(global step, value)`.
pub type Series = Vec<(f64, f64)>;

/// The plottable content of a metrics log.
#[derive(Debug, Default, Clone)]
pub struct MetricsLog {
    /// Loss per objective.
    pub losses: BTreeMap<String, Series>,
    pub lr: Series,
    /// Evaluator -> metric -> values at the steps it ran during training.
    pub evals: BTreeMap<String, BTreeMap<String, Series>>,
    /// Each evaluator's primary metric (from `summary.json`), where known.
    pub primary: BTreeMap<String, String>,
    /// Stages in the order they ran: (name, first global step, last).
    pub stages: Vec<(String, f64, f64)>,
    /// Evaluations made after training (for `expect`): evaluator -> metrics.
    pub finals: BTreeMap<String, Vec<(String, f64)>>,
}

impl MetricsLog {
    /// Read `metrics.jsonl` (and the primary metrics from `summary.json`)
    /// of a run directory. Lines that are not JSON objects of the log's
    /// kinds (a torn last line of a killed run) are skipped.
    pub fn read(run_dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(run_dir.join("metrics.jsonl"))?;
        let mut log = Self::parse(&text);
        if let Ok(s) = std::fs::read(run_dir.join("summary.json")) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&s) {
                for f in v["final_metrics"].as_array().into_iter().flatten() {
                    if let (Some(e), Some(m)) = (f[0].as_str(), f[1].as_str()) {
                        log.primary.insert(e.to_string(), m.to_string());
                    }
                }
            }
        }
        Ok(log)
    }

    /// The series of a log's text.
    pub fn parse(text: &str) -> Self {
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut log = MetricsLog::default();
        // Stage order and lengths first: offsets need every stage's end.
        let mut ends: Vec<(String, u64)> = Vec::new();
        for v in &lines {
            let (Some(stage), Some(step)) = (v["stage"].as_str(), v["step"].as_u64()) else {
                continue;
            };
            if stage == crate::runtime::train::log::FINAL_STAGE {
                continue;
            }
            match ends.iter_mut().find(|(s, _)| s == stage) {
                Some((_, end)) => *end = (*end).max(step),
                None => ends.push((stage.to_string(), step)),
            }
        }
        let mut offset = 0u64;
        let mut offsets = BTreeMap::new();
        for (name, end) in &ends {
            offsets.insert(name.clone(), offset);
            log.stages
                .push((name.clone(), offset as f64, (offset + end) as f64));
            offset += end;
        }
        for v in &lines {
            log.add_line(v, &offsets);
        }
        for s in log.losses.values_mut().chain(std::iter::once(&mut log.lr)) {
            s.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        for m in log.evals.values_mut() {
            for s in m.values_mut() {
                s.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
        log
    }

    fn add_line(&mut self, v: &serde_json::Value, offsets: &BTreeMap<String, u64>) {
        let (Some(stage), Some(step)) = (v["stage"].as_str(), v["step"].as_u64()) else {
            return;
        };
        let metrics = v["metrics"].as_object();
        if stage == crate::runtime::train::log::FINAL_STAGE {
            if let (Some(e), Some(m)) = (v["evaluator"].as_str(), metrics) {
                let entries = m
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                self.finals.insert(e.to_string(), entries);
            }
            return;
        }
        let Some(off) = offsets.get(stage) else {
            return;
        };
        let x = (off + step) as f64;
        if let (Some(e), Some(m)) = (v["evaluator"].as_str(), metrics) {
            let by_metric = self.evals.entry(e.to_string()).or_default();
            for (k, y) in m {
                if let Some(y) = y.as_f64() {
                    by_metric.entry(k.clone()).or_default().push((x, y));
                }
            }
            return;
        }
        if let Some(losses) = v["loss"].as_object() {
            for (o, y) in losses {
                if let Some(y) = y.as_f64() {
                    self.losses.entry(o.clone()).or_default().push((x, y));
                }
            }
        }
        if let Some(lr) = v["lr"].as_f64() {
            self.lr.push((x, lr));
        }
    }

    /// The primary metric of `evaluator`: from the summary, else its first.
    pub fn primary_of(&self, evaluator: &str) -> Option<&str> {
        self.primary.get(evaluator).map(String::as_str).or_else(|| {
            self.evals
                .get(evaluator)
                .and_then(|m| m.keys().next().map(String::as_str))
        })
    }

    /// The best (highest: every evaluator's metrics grow with quality, as
    /// `best by` assumes) point of `evaluator.metric` during training.
    pub fn best(&self, evaluator: &str, metric: &str) -> Option<(f64, f64)> {
        self.evals
            .get(evaluator)?
            .get(metric)?
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .fold(None, |best: Option<(f64, f64)>, p| match best {
                Some(b) if b.1 >= p.1 => Some(b),
                _ => Some(p),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"note":"cpu"}
{"stage":"a","step":1,"loss":{"sim":0.5},"lr":1e-5,"grad_norm":1.0,"examples_per_s":3.0}
{"stage":"a","step":2,"loss":{"sim":0.4},"lr":2e-5,"grad_norm":1.0,"examples_per_s":3.0}
{"stage":"a","step":2,"evaluator":"dev","metrics":{"spearman_cosine":0.7,"pearson_cosine":0.6}}
{"stage":"b","step":1,"loss":{"mnrl":2.0},"lr":3e-5,"grad_norm":1.0,"examples_per_s":3.0}
{"stage":"b","step":1,"evaluator":"dev","metrics":{"spearman_cosine":0.65,"pearson_cosine":null}}
{"stage":"expect","step":0,"evaluator":"test","metrics":{"spearman_cosine":0.8}}
{"stage":"b","step":2,"loss":{"mn"#;

    #[test]
    fn stages_follow_one_another_and_torn_lines_are_skipped() {
        let l = MetricsLog::parse(LOG);
        assert_eq!(
            l.stages,
            vec![("a".into(), 0.0, 2.0), ("b".into(), 2.0, 3.0)]
        );
        assert_eq!(l.losses["sim"], vec![(1.0, 0.5), (2.0, 0.4)]);
        assert_eq!(l.losses["mnrl"], vec![(3.0, 2.0)]);
        assert_eq!(l.lr.len(), 3);
        assert_eq!(
            l.evals["dev"]["spearman_cosine"],
            vec![(2.0, 0.7), (3.0, 0.65)]
        );
        assert_eq!(l.evals["dev"]["pearson_cosine"], vec![(2.0, 0.6)]);
        assert_eq!(l.finals["test"], vec![("spearman_cosine".into(), 0.8)]);
        assert_eq!(l.best("dev", "spearman_cosine"), Some((2.0, 0.7)));
        assert_eq!(l.primary_of("dev"), Some("pearson_cosine"));
    }
}
