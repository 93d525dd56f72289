//! The data columns a loss or evaluator needs (its registry `Columns`),
//! against a source's columns: the label (present or absent, its type,
//! its values in the first rows, a list's length, classes against
//! `num_labels`), and the text columns. Also the named columns a
//! `DataColumns` argument asks for.

use super::args::BoundArgs;
use super::Checker;
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, Component};

/// What one component needs of one source, and where the source is named.
#[derive(Clone, Copy)]
struct Need<'a> {
    comp: &'a Component,
    spec: &'a registry::Columns,
    ds: &'a DataSource,
    at: Span,
}

impl Checker<'_> {
    /// Whether `ds` has the columns `comp` needs; reports what is wrong.
    pub(crate) fn check_columns(
        &mut self,
        comp: &Component,
        ds: &DataSource,
        at: Span,
        args: &BoundArgs,
    ) -> bool {
        let ok = self.columns_fit(comp, ds, at, args);
        if ok {
            self.require_labels(comp, &ds.name, args);
        }
        ok
    }

    /// Record what `comp` requires of every label of source `name`.
    fn require_labels(&mut self, comp: &Component, name: &str, args: &BoundArgs) {
        let Some(spec) = comp.columns else {
            return;
        };
        let classes = spec
            .label_classes
            .and_then(|a| args.get(a))
            .and_then(|(v, _)| v.as_i64());
        if spec.label_range.is_none() && classes.is_none() {
            return;
        }
        let check = LabelCheck {
            by: comp.name.to_string(),
            range: spec.label_range,
            classes,
        };
        if let Some(d) = self.out.data.iter_mut().find(|d| d.name == name) {
            if !d.label_checks.contains(&check) {
                d.label_checks.push(check);
            }
        }
    }

    /// Whether `ds` has what `comp`'s `Columns` ask for (with a teacher
    /// that computes the label, no label); reports every mismatch.
    fn columns_fit(
        &mut self,
        comp: &Component,
        ds: &DataSource,
        at: Span,
        args: &BoundArgs,
    ) -> bool {
        let Some(mut spec) = comp.columns else {
            return true;
        };
        // A teacher model computes the label: the data holds none.
        if spec.label_from.is_some_and(|a| args.get(a).is_some()) {
            spec = registry::Columns {
                label: None,
                list_label: registry::ListLabel::No,
                label_range: None,
                ..spec
            };
        }
        if let Some(arg) = spec.label_classes {
            if !self.check_label_classes(arg, args, ds) {
                return false;
            }
        }
        let need = Need {
            comp,
            spec: &spec,
            ds,
            at,
        };
        let mut ok = self.check_label_type(&need);
        ok &= self.check_label_range(&need);
        ok &= self.check_text_columns(&need);
        ok
    }

    /// A label column when the component needs one, none when it takes
    /// none, and of the type it reads.
    fn check_label_type(&mut self, need: &Need) -> bool {
        let Need { comp, spec, ds, at } = *need;
        let label = ds.label_column();
        let wanted = spec.describe();
        match (spec.label, label) {
            (Some(t), None) => {
                let have: Vec<&str> = ds.columns.iter().map(|c| c.name.as_str()).collect();
                self.err(
                    Diag::error(
                        "missing-label",
                        at,
                        format!(
                            "{} needs a {} column named `label` or `score`; `{}` has columns {}",
                            comp.name,
                            t.noun(),
                            ds.name,
                            have.join(", ")
                        ),
                    )
                    .help(format!("{} needs {wanted}", comp.name)),
                );
                false
            }
            (None, Some(l)) => {
                self.err(
                    Diag::error(
                        "unexpected-label",
                        at,
                        format!(
                            "{} takes no label column, but `{}` has `{}`",
                            comp.name, ds.name, l.name
                        ),
                    )
                    .help(format!("{} needs {wanted}", comp.name)),
                );
                false
            }
            (Some(want), Some(l))
                if want == ColType::FloatList || l.ty == Some(ColType::FloatList) =>
            {
                self.check_list_label(comp, spec, ds, l, at)
            }
            (Some(want), Some(l)) => self.check_scalar_label(need, want, l),
            (None, None) => true,
        }
    }

    /// A score or class label that holds what the component reads.
    fn check_scalar_label(&mut self, need: &Need, want: ColType, l: &Column) -> bool {
        let Need { comp, ds, at, .. } = *need;
        let found = match (want, l.ty) {
            (ColType::Float | ColType::Int, Some(ColType::Text)) => "text",
            (ColType::Int, Some(ColType::Float)) => "non-integer numbers",
            _ => return true,
        };
        let help = if found == "text" && want == ColType::Int {
            "map text labels to integers: `label: map(col(...), {\"entailment\": 0, ...})`"
        } else if want == ColType::Int {
            "class labels must be integers 0, 1, 2, ..."
        } else {
            "choose the numeric score column, e.g. `score: col(4) / 5.0`"
        };
        let wanted = if want == ColType::Int {
            "an integer label"
        } else {
            "a float score"
        };
        self.err(
            Diag::error(
                "label-type",
                at,
                format!(
                    "{} needs {wanted} in `{}`, but column `{}` of `{}` holds {found}",
                    comp.name, l.name, l.name, ds.name
                ),
            )
            .help(help),
        );
        false
    }

    /// The label values of the first rows inside the component's range.
    fn check_label_range(&mut self, need: &Need) -> bool {
        let Need { comp, spec, ds, at } = *need;
        let (Some((lo, hi)), Some(l)) = (spec.label_range, ds.label_column()) else {
            return true;
        };
        let bad = l.samples.iter().find(|v| {
            v.trim()
                .parse::<f64>()
                .is_ok_and(|x| !(lo..=hi).contains(&x))
        });
        let Some(v) = bad else {
            return true;
        };
        let help = if spec.label == Some(ColType::Float) {
            format!(
                "scale the scores into [{lo}, {hi}], e.g. `score: col(4) / 5.0` for 0..5 scores"
            )
        } else {
            format!("labels must be {lo} or {hi}")
        };
        self.err(
            Diag::error(
                "label-range",
                at,
                format!(
                    "{} needs `{}` values in [{lo}, {hi}], but `{}` has {} in its first rows",
                    comp.name,
                    l.name,
                    ds.name,
                    v.trim()
                ),
            )
            .help(help),
        );
        false
    }

    /// As many text columns as the component reads, holding text.
    fn check_text_columns(&mut self, need: &Need) -> bool {
        let Need { comp, spec, ds, at } = *need;
        let texts = ds.text_columns();
        let n = texts.len();
        let too_few = n < spec.min_texts;
        let too_many = spec.max_texts.is_some_and(|m| n > m);
        if too_few || too_many {
            let tn: Vec<&str> = texts.iter().map(|c| c.name.as_str()).collect();
            self.err(
                Diag::error(
                    "text-columns",
                    at,
                    format!(
                        "{} needs {}; `{}` has {n} text column(s){}",
                        comp.name,
                        spec.describe(),
                        ds.name,
                        if tn.is_empty() { String::new() } else { format!(": {}", tn.join(", ")) }
                    ),
                )
                .help("choose the columns in the source's column block; the label column must be named `label` or `score`"),
            );
            return false;
        }
        let Some(c) = texts
            .iter()
            .find(|c| matches!(c.ty, Some(ColType::Int | ColType::Float)))
        else {
            return true;
        };
        self.err(
            Diag::error(
                "text-type",
                at,
                format!(
                    "{} reads `{}` of `{}` as text, but it holds numbers",
                    comp.name, c.name, ds.name
                ),
            )
            .help("name a numeric column `label` or `score` to use it as the label"),
        );
        false
    }

    /// A label that is a list of scores, or one that should be: its type
    /// and its length against the text columns.
    fn check_list_label(
        &mut self,
        comp: &Component,
        spec: &registry::Columns,
        ds: &DataSource,
        l: &Column,
        at: Span,
    ) -> bool {
        let texts = ds.text_columns().len();
        let lengths = spec.list_label.lengths(texts);
        let need = spec.describe();
        if l.ty != Some(ColType::FloatList) {
            self.err(
                Diag::error(
                    "label-type",
                    at,
                    format!(
                        "{} needs a list of scores in `{}` (one per candidate), but `{}` holds one value per row",
                        comp.name, l.name, ds.name
                    ),
                )
                .help(format!("read the teacher's scores as a list: `score: take(col(\"scores\"), {})`", lengths.first().copied().unwrap_or(2))),
            );
            return false;
        }
        if lengths.is_empty() {
            self.err(
                Diag::error(
                    "label-type",
                    at,
                    format!(
                        "{} needs one value in `{}`, but `{}` holds a list of scores per row",
                        comp.name, l.name, ds.name
                    ),
                )
                .help(format!(
                    "{} needs {need}; `item(col(...), 0)` reads one element",
                    comp.name
                )),
            );
            return false;
        }
        match l.list_len {
            Some(k) if !lengths.contains(&k) => {
                let allowed: Vec<String> = lengths.iter().map(usize::to_string).collect();
                self.err(
                    Diag::error(
                        "label-length",
                        at,
                        format!(
                            "{} reads {texts} text columns of `{}`, so the list in `{}` must hold {} score(s) per row, not {k}",
                            comp.name,
                            ds.name,
                            l.name,
                            allowed.join(" or ")
                        ),
                    )
                    .help(format!("{} needs {need}", comp.name)),
                );
                false
            }
            _ => true,
        }
    }

    /// Labels of `ds` must be classes `0..n`, `n` the value of the
    /// argument the loss names (`num_labels`).
    fn check_label_classes(&mut self, arg: &str, args: &BoundArgs, ds: &DataSource) -> bool {
        let Some((ArgValue::Int(n), span)) = args.get(arg) else {
            return true;
        };
        let (n, span) = (*n, *span);
        if let Some(l) = ds.label_column() {
            let bad = l
                .samples
                .iter()
                .find(|v| v.trim().parse::<i64>().is_ok_and(|x| x < 0 || x >= n));
            if let Some(v) = bad {
                self.err(
                    Diag::error(
                        "label-out-of-range",
                        span,
                        format!(
                            "{arg} is {n}, but `{}` has label {} in its first rows",
                            ds.name,
                            v.trim()
                        ),
                    )
                    .help(format!("labels must be 0 to {}", n - 1)),
                );
                return false;
            }
        }
        if let Some(ColumnExpr::Map { map, .. }) = ds.label_column().and_then(|c| c.expr.as_ref()) {
            if let Some((k, v)) = map.iter().find(|(_, v)| *v < 0 || *v >= n) {
                self.err(
                    Diag::error(
                        "label-out-of-range",
                        span,
                        format!("{arg} is {n}, but `{}` maps {k:?} to label {v}", ds.name),
                    )
                    .help(format!("labels must be 0 to {}", n - 1)),
                );
                return false;
            }
        }
        true
    }

    /// Whether data source `name` has the named columns `need`.
    pub(crate) fn has_columns(&mut self, name: &str, need: &[&str], span: Span, ctx: &str) -> bool {
        let Some(d) = self.out.data_source(name) else {
            return false;
        };
        let missing: Vec<&str> = need
            .iter()
            .copied()
            .filter(|c| !d.columns.iter().any(|x| x.name == *c))
            .collect();
        if missing.is_empty() {
            return true;
        }
        let have: Vec<&str> = d.columns.iter().map(|c| c.name.as_str()).collect();
        let d = Diag::error(
            "missing-column",
            span,
            format!(
                "{ctx} needs columns {} in `{name}`; it has {}",
                need.join(", "),
                have.join(", ")
            ),
        )
        .help(format!(
            "name the columns `{}` in `{name}`'s column block",
            need.join("`, `")
        ));
        self.err(d);
        false
    }
}
