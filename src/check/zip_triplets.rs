//! The two built-in derived sources: `zip` (line-aligned sources side by
//! side) and `triplets` (anchor, positive, negative from a labelled pair
//! source, grouped by the anchor column).

use super::args::BoundArgs;
use super::Checker;
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry;

impl Checker<'_> {
    /// `zip(a, b, ...)`: at least two sources whose columns differ.
    pub(super) fn check_zip(&mut self, args: &BoundArgs) -> Option<(DataKind, Vec<Column>)> {
        let (srcs, sp) = args.get("sources")?;
        let names: Vec<String> = match srcs {
            ArgValue::List(l) => l
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if names.len() < 2 {
            self.err(
                Diag::error("zip-arity", *sp, "zip needs at least two data sources")
                    .help("e.g. `zip(english, german)` with line-aligned sources"),
            );
            return None;
        }
        let mut cols: Vec<Column> = Vec::new();
        let mut ok = true;
        for n in &names {
            let Some(d) = self.out.data_source(n).cloned() else {
                ok = false;
                continue;
            };
            for c in &d.columns {
                if cols.iter().any(|x| x.name == c.name) {
                    self.err(
                        Diag::error(
                            "duplicate-column",
                            *sp,
                            format!("zip: column `{}` comes from more than one source (again from `{n}`)", c.name),
                        )
                        .help("rename the columns in the sources' column blocks so that they differ"),
                    );
                    ok = false;
                } else {
                    cols.push(Column::derived_from(c));
                }
            }
        }
        ok.then_some((DataKind::Zip { sources: names }, cols))
    }

    /// `triplets(source, by: ..., positive: ..., negative: ...)`: the
    /// columns it names exist, and the two labels differ.
    pub(super) fn check_triplets(
        &mut self,
        args: &BoundArgs,
        at: Span,
    ) -> Option<(DataKind, Vec<Column>)> {
        let get = |k: &str| args.get(k).map(|(v, s)| (v.clone(), *s));
        let src_name = get("source")?.0.as_str()?.to_string();
        let src = self.out.data_source(&src_name)?.clone();
        let (by, by_span) = get("by")?;
        let by = by.as_str()?.to_string();
        let (label, label_span) = get("label")?;
        let label = label.as_str()?.to_string();
        let text = match get("text") {
            Some((v, s)) => (v.as_str()?.to_string(), s),
            None => (self.candidate_column(&src, &by, &label, at)?, at),
        };
        let mut ok = true;
        for (c, sp, role) in [
            (&by, by_span, "by"),
            (&text.0, text.1, "text"),
            (&label, label_span, "label"),
        ] {
            ok &= self.has_column(&src, c, sp, role);
        }
        let to_label = |v: Option<(ArgValue, Span)>| match v {
            Some((ArgValue::Int(i), _)) => Some(LabelValue::Int(i)),
            Some((ArgValue::Str(s), _)) => Some(LabelValue::Str(s)),
            _ => None,
        };
        let pos_span = get("positive").map(|p| p.1).unwrap_or(at);
        let positive = to_label(get("positive"))?;
        let negative = to_label(get("negative"))?;
        if positive == negative {
            self.err(
                Diag::error(
                    "bad-triplets",
                    pos_span,
                    "the positive and negative labels are the same",
                )
                .help("e.g. for NLI: `positive: 0, negative: 2` (entailment, contradiction)"),
            );
            ok = false;
        }
        let cols = ["anchor", "positive", "negative"]
            .iter()
            .map(|n| Column::derived(n, ColType::Text))
            .collect();
        let kind = DataKind::Triplets {
            source: src_name,
            by,
            text: text.0,
            label,
            positive,
            negative,
        };
        ok.then_some((kind, cols))
    }

    /// Without `text:`, the candidates are the first text column that is
    /// neither the anchor nor the label.
    fn candidate_column(
        &mut self,
        src: &DataSource,
        by: &str,
        label: &str,
        at: Span,
    ) -> Option<String> {
        let t = src
            .text_columns()
            .into_iter()
            .map(|c| c.name.clone())
            .find(|c| c != by && c != label);
        if t.is_none() {
            self.err(
                Diag::error(
                    "missing-column",
                    at,
                    format!("`{}` has no text column besides `{by}`", src.name),
                )
                .help("triplets need an anchor column and a candidate text column"),
            );
        }
        t
    }

    /// Whether `src` has column `c`, named for `role`; reports it if not.
    fn has_column(&mut self, src: &DataSource, c: &str, sp: Span, role: &str) -> bool {
        let col_names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();
        if col_names.contains(&c) {
            return true;
        }
        let help = match registry::did_you_mean(c, col_names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("`{}` has columns: {}", src.name, col_names.join(", ")),
        };
        self.err(
            Diag::error(
                "unknown-column",
                sp,
                format!("`{}` has no column `{c}` (for `{role}`)", src.name),
            )
            .help(help),
        );
        false
    }
}
