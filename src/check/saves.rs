//! Saves never destroy anything: checked after the whole file, against
//! every input and the run directory.
//!
//! A `save` target must be absent, an empty directory, or a model stpipe
//! saved (replaced atomically at run time); it may not be, contain, or lie
//! inside a data file's directory, a model directory the pipeline reads,
//! or the run directory; and two saves may not share a target.

use std::path::{Path, PathBuf};

use super::Checker;
use crate::check::types::{DataKind, Step};
use crate::diag::{Diag, Span};
use crate::runtime::st_format::save::{target_kind, Target};

/// An absolute, normalised path (without touching the file system).
fn absolute(p: &Path) -> PathBuf {
    super::normalize(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// How `target` relates to the input `input`, if it endangers it.
fn overlap(target: &Path, input: &Path) -> Option<&'static str> {
    if target == input {
        Some("is")
    } else if input.starts_with(target) {
        Some("contains")
    } else if target.starts_with(input) {
        Some("lies inside")
    } else {
        None
    }
}

impl Checker<'_> {
    pub(crate) fn check_saves(&mut self) {
        let saves: Vec<(PathBuf, Span, String)> = self
            .out
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Save(sv) => Some((absolute(&sv.path), sv.span, sv.model.clone())),
                _ => None,
            })
            .collect();
        // What the pipeline reads: data files' directories, model
        // directories; and where the run writes.
        let mut inputs: Vec<(PathBuf, String)> = Vec::new();
        for d in &self.out.data {
            if let DataKind::File { path, written, .. } = &d.kind {
                if let Some(dir) = absolute(path).parent() {
                    inputs.push((
                        dir.to_path_buf(),
                        format!("the directory of data file `{written}`"),
                    ));
                }
            }
        }
        for m in &self.out.models {
            for module in &m.modules {
                if let Some(dir) = &module.dir {
                    inputs.push((
                        absolute(dir),
                        format!("the directory of model `{}`", m.name),
                    ));
                }
            }
        }
        if let Some(run) = &self.opts.run_dir {
            inputs.push((absolute(run), "the run directory".to_string()));
        }
        for (i, (target, span, model)) in saves.iter().enumerate() {
            if let Some((_, first, _)) = saves[..i].iter().find(|(t, _, _)| t == target) {
                let d = Diag::error(
                    "duplicate-save",
                    *span,
                    format!(
                        "two saves write `{}`; the second would replace the first",
                        target.display()
                    ),
                )
                .also(*first, "saved here first")
                .help("give each save its own directory");
                self.err(d);
                continue;
            }
            if let Some((input, what, how)) = inputs
                .iter()
                .find_map(|(p, what)| overlap(target, p).map(|how| (p, what, how)))
            {
                self.err(
                    Diag::error(
                        "unsafe-save",
                        *span,
                        format!(
                            "saving `{model}` here would overwrite what the pipeline reads: `{}` {how} {what} (`{}`)",
                            target.display(),
                            input.display()
                        ),
                    )
                    .help("save to a new directory outside the data, the models and the run directory"),
                );
                continue;
            }
            let problem = match target_kind(target) {
                Target::Absent | Target::Empty | Target::StpipeModel => None,
                Target::Foreign if target.is_dir() => Some("is a directory stpipe did not write"),
                Target::Foreign => Some("is a file"),
            };
            if let Some(problem) = problem {
                self.err(
                    Diag::error(
                        "unsafe-save",
                        *span,
                        format!(
                            "`{}` {problem}; stpipe only replaces models it saved",
                            target.display()
                        ),
                    )
                    .help("save to a new or empty directory (or remove what is there yourself)"),
                );
            }
        }
    }
}
