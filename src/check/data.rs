//! Data sources: which reader or transform a `data` statement calls, its
//! row limit, and a plain reference to another source. Files are checked
//! in [`super::file_source`], `zip` and `triplets` in
//! [`super::zip_triplets`], the registry's transforms in
//! [`super::transforms`].

use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, Component, Family};
use crate::syntax::ast;

/// A `data` statement's parts.
pub(crate) struct DataStmt<'a> {
    pub name: &'a ast::Ident,
    pub source: &'a ast::Call,
    pub columns: Option<&'a [ast::ColumnDef]>,
    pub columns_span: Option<Span>,
    pub limit: Option<&'a ast::Value>,
}

impl Checker<'_> {
    pub(crate) fn check_data(&mut self, stmt: &DataStmt) -> Option<DataSource> {
        let DataStmt {
            name,
            source,
            columns_span,
            ..
        } = *stmt;
        let limit = self.data_limit(stmt.limit)?;
        let call_name = &source.name;
        let is_binding = self.bindings.contains_key(&call_name.name);
        if !source.parens && is_binding {
            // `data d = other limit 10`
            let src = self.resolve(call_name, BindKind::Data)?;
            if let Some(cs) = columns_span {
                self.no_columns_here(cs);
                return None;
            }
            let columns = self.out.data_source(&src)?.columns.clone();
            return Some(DataSource::new(
                name,
                DataKind::Ref { source: src },
                columns,
                limit,
            ));
        }
        let comp = self.data_component(call_name)?;
        let args = self.bind(comp, &source.args, source.span)?;
        let transform = crate::registry::catalogue::transform(comp.name);
        let (kind, columns) = match transform.and_then(|entry| entry.columns) {
            Some(columns) => {
                self.no_columns_given(columns_span)?;
                self.check_derived(comp, &args, columns, source.span)?
            }
            None if comp.name == "zip" => {
                self.no_columns_given(columns_span)?;
                self.check_zip(&args)?
            }
            None if comp.name == "triplets" => {
                self.no_columns_given(columns_span)?;
                self.check_triplets(&args, source.span)?
            }
            None => self.check_file_source(comp, &args, stmt)?,
        };
        Some(DataSource::new(name, kind, columns, limit))
    }

    /// `limit N`: a positive count (`Some(None)` without one; `None` when
    /// it is wrong, reported).
    fn data_limit(&mut self, limit: Option<&ast::Value>) -> Option<Option<usize>> {
        let Some(v) = limit else {
            return Some(None);
        };
        match self.convert(v, registry::ArgType::Count, "`limit`")? {
            ArgValue::Int(0) => {
                self.err(
                    Diag::error("out-of-range", v.span, "`limit 0` leaves no rows")
                        .help("give a positive number of rows, or remove the limit"),
                );
                None
            }
            ArgValue::Int(n) => Some(Some(n as usize)),
            _ => None,
        }
    }

    /// The reader or transform a `data` statement calls, reporting an
    /// unknown name (with the readers, transforms and data sources it
    /// might have meant).
    fn data_component(&mut self, call_name: &ast::Ident) -> Option<&'static Component> {
        let found = registry::lookup(Family::Reader, &call_name.name)
            .or_else(|| registry::lookup(Family::Transform, &call_name.name));
        if found.is_some() {
            return found;
        }
        let mut names: Vec<&str> = registry::family(Family::Reader)
            .iter()
            .chain(registry::family(Family::Transform).iter())
            .map(|c| c.name)
            .collect();
        let data_names: Vec<String> = self
            .bindings
            .iter()
            .filter(|(_, b)| b.kind == BindKind::Data)
            .map(|(n, _)| n.clone())
            .collect();
        let mut all = names.clone();
        all.extend(data_names.iter().map(String::as_str));
        let help = match registry::did_you_mean(&call_name.name, all.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => {
                names.sort();
                format!("readers and transforms: {}", names.join(", "))
            }
        };
        self.err(
            Diag::error(
                "unknown-name",
                call_name.span,
                format!("unknown data reader `{}`", call_name.name),
            )
            .help(help),
        );
        None
    }

    /// `Some` when a source that makes its own columns has no column
    /// block; reports the block otherwise.
    fn no_columns_given(&mut self, columns_span: Option<Span>) -> Option<()> {
        match columns_span {
            Some(cs) => {
                self.no_columns_here(cs);
                None
            }
            None => Some(()),
        }
    }

    pub(crate) fn no_columns_here(&mut self, span: Span) {
        self.err(
            Diag::error(
                "misplaced-columns",
                span,
                "a column block can only follow a file reader (tsv, csv, jsonl, parquet, smart)",
            )
            .help("choose and name the columns in the column blocks of the file sources"),
        );
    }
}

impl DataSource {
    fn new(name: &ast::Ident, kind: DataKind, columns: Vec<Column>, limit: Option<usize>) -> Self {
        DataSource {
            name: name.name.clone(),
            span: name.span,
            kind,
            columns,
            limit,
            label_checks: Vec::new(),
        }
    }
}
