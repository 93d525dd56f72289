//! Diagnostics: every user-caused problem, with its span, message and help.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};
use serde::Serialize;

/// A byte range in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a diagnostic stops the pipeline from running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone)]
pub struct Diag {
    pub level: Level,
    /// A stable code, e.g. `unknown-name`.
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// Short text under the caret.
    pub label: Option<String>,
    pub help: Option<String>,
    /// Other places involved (the first definition of a duplicate, the
    /// module whose width disagrees), each with its label.
    pub also: Vec<(Span, String)>,
}

impl Diag {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diag {
            level: Level::Error,
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
            also: Vec::new(),
        }
    }
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diag {
            level: Level::Warning,
            ..Diag::error(code, span, message)
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    /// Another place involved, with a label.
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.also.push((span, label.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(src).line_col(src, offset)
}

/// The byte offsets where the lines of a source start, for line and column
/// lookups in logarithmic time (a file with many diagnostics must not cost
/// a scan of the file per diagnostic).
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of `offset` in `src`.
    pub fn line_col(&self, src: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        (line, src[start..offset].chars().count() + 1)
    }
}

/// A set of diagnostics for one source file, printable with miette.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub source: Arc<String>,
    pub diags: Vec<Diag>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }

    /// One line per diagnostic: `error 3:15 [code] message`.
    pub fn to_plain(&self) -> String {
        let index = LineIndex::new(&self.source);
        let mut out = String::new();
        for d in &self.diags {
            let (l, c) = index.line_col(&self.source, d.span.start);
            let lvl = match d.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            out.push_str(&format!("{lvl} {l}:{c} [{}] {}\n", d.code, d.message));
        }
        out
    }

    /// The diagnostics as JSON values.
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        let index = LineIndex::new(&self.source);
        self.diags
            .iter()
            .map(|d| {
                let (line, col) = index.line_col(&self.source, d.span.start);
                let (end_line, end_col) = index.line_col(&self.source, d.span.end);
                let related: Vec<serde_json::Value> = d
                    .also
                    .iter()
                    .map(|(sp, label)| {
                        let (l, c) = index.line_col(&self.source, sp.start);
                        serde_json::json!({ "line": l, "column": c, "label": label })
                    })
                    .collect();
                serde_json::json!({
                    "file": self.name,
                    "severity": d.level,
                    "code": d.code,
                    "message": d.message,
                    "help": d.help,
                    "line": line,
                    "column": col,
                    "end_line": end_line,
                    "end_column": end_col,
                    "offset": d.span.start,
                    "length": d.span.len(),
                    "related": related,
                })
            })
            .collect()
    }

    /// Each diagnostic as a miette diagnostic bound to the source.
    pub fn miette(&self) -> Vec<MietteDiag> {
        let src = NamedSource::new(self.name.clone(), self.source.clone());
        self.diags
            .iter()
            .map(|d| MietteDiag {
                diag: d.clone(),
                src: src.clone(),
            })
            .collect()
    }
}

/// A [`Diag`] bound to its source, for miette's renderers.
#[derive(Debug)]
pub struct MietteDiag {
    pub diag: Diag,
    pub src: NamedSource<Arc<String>>,
}

impl fmt::Display for MietteDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for MietteDiag {}

impl Diagnostic for MietteDiag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("stpipe::{}", self.diag.code)))
    }
    fn severity(&self) -> Option<Severity> {
        Some(match self.diag.level {
            Level::Error => Severity::Error,
            Level::Warning => Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h.clone()) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let s = self.diag.span;
        let primary = LabeledSpan::new(self.diag.label.clone(), s.start, s.len());
        let others = self
            .diag
            .also
            .iter()
            .map(|(sp, l)| LabeledSpan::new(Some(l.clone()), sp.start, sp.len()));
        Some(Box::new(std::iter::once(primary).chain(others)))
    }
}
