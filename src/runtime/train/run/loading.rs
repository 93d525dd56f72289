//! How the executor loads data sources (from files, from what it has
//! loaded, through the models it has built, from the records of mined
//! sources) and the model card's figures that need them.

use std::collections::HashMap;

use super::{cache, Executor};
use crate::plan::StepKind;
use crate::runtime::data::{self, Dataset, LoadOptions};
use crate::runtime::train::error::Result;
use crate::runtime::train::log::RunLog;

impl Executor<'_> {
    /// Load a data source: from its files, from the sources loaded
    /// already, transformed with the models built already. Notes of the
    /// transforms are shown as they come and logged afterwards.
    pub(super) fn load_data(&self, name: &str, log: &mut RunLog) -> Result<Dataset> {
        let load_opts = LoadOptions {
            skip_bad_rows: self.opts.skip_bad_rows,
            max_rows: self.opts.limit,
        };
        let notes = std::cell::RefCell::new(Vec::new());
        let note = |m: &str| {
            log.show(m);
            notes.borrow_mut().push(m.to_string());
        };
        let env = data::LoadEnv {
            ready: Some(&self.datasets),
            models: Some(&self.models),
            note: Some(&note),
        };
        let r = data::load_with(self.p, name, &load_opts, &env);
        for m in notes.into_inner() {
            log.note_shown(&m);
        }
        Ok(r?)
    }

    /// The recorded rows of a mined source, when its step's record is
    /// there.
    pub(super) fn recorded_data(&self, name: &str) -> Option<Dataset> {
        let n = self.plan.steps().find_map(|(n, s)| match &s.kind {
            StepKind::LoadData {
                data,
                recorded: true,
            } if data == name => Some(n),
            _ => None,
        })?;
        let fp = cache::data_fingerprint(&self.plan.graph[n].fingerprint, self.opts);
        data::record::read(&self.opts.run_dir, name, &fp)
    }

    /// The model card of a save of `model` to `path`. Its figures do not
    /// depend on which steps this run reused: the row counts of sources a
    /// restored stage did not load are read now, the evaluations come from
    /// the whole metrics log.
    pub(super) fn card(&self, model: &str, path: &str, log: &RunLog) -> Result<String> {
        let mut rows: HashMap<String, usize> = HashMap::new();
        for o in self.p.objectives.iter().filter(|o| o.model == model) {
            let n = match self.datasets.get(&o.data) {
                Some(d) => d.len(),
                None => match self.recorded_data(&o.data) {
                    Some(d) => d.len(),
                    None => {
                        let opts = LoadOptions {
                            skip_bad_rows: self.opts.skip_bad_rows,
                            max_rows: self.opts.limit,
                        };
                        let env = data::LoadEnv {
                            ready: Some(&self.datasets),
                            models: Some(&self.models),
                            note: None,
                        };
                        data::load_with(self.p, &o.data, &opts, &env)?.len()
                    }
                },
            };
            rows.insert(o.data.clone(), n);
        }
        let evaluations = log.recorded_evaluations();
        Ok(crate::runtime::train::card::render(
            &crate::runtime::train::card::CardInput {
                pipeline: self.p,
                source: self.source,
                model,
                encoder: self.model(model)?,
                rows,
                summary: &self.summary,
                evaluations: &evaluations,
                best_by: crate::runtime::train::card::best_by_of(self.p, model, path),
                smoke: super::smoke_flags(self.opts),
            },
        ))
    }
}
