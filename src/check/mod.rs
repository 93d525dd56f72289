//! The checker: resolves names, arguments, dimensions, data columns and
//! files of a parsed pipeline against the [registry](crate::registry), and
//! reports every problem at once.
//!
//! Entry points: [`check_file`] and [`check_source`]; both return a
//! [`Report`] (diagnostics) and, when there is no error, a typed
//! [`Pipeline`].

mod args;
mod bindings;
mod columns;
mod convert;
mod rules;
pub use columns::COLUMN_FUNCTIONS;
mod data;
mod data_needs;
mod file_source;
mod lets;
mod lists;
mod memory;
mod models;
mod normalize;
mod objectives;
pub mod overrides;
mod own_models;
mod peek;
mod save_expect;
mod saves;
mod sequence;
mod stages;
mod transforms;
pub mod types;
mod wrappers;
mod zip_triplets;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use types::*;

use crate::diag::{Diag, LineIndex, Report, Span};
use crate::hub::ModelSearch;
use crate::syntax::ast::{self, StmtKind};

/// Environment variable naming the data root (`--data-root`).
pub const DATA_ENV: &str = "STPIPE_DATA";

/// What the checker needs from the outside world.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Variables for `${VAR}` interpolation (the process environment, usually).
    pub env: HashMap<String, String>,
    /// Where models are looked for.
    pub models: ModelSearch,
    /// The run directory a run would use (saves may not write into it).
    pub run_dir: Option<PathBuf>,
    /// The run skips unreadable rows (`--skip-bad-rows`): a data file whose
    /// head is not UTF-8 is then not an error at check time.
    pub skip_bad_rows: bool,
    /// Appended to the last component of every `save` path (a sweep
    /// point's `@lr=2e-5`), before the saves are checked.
    pub save_suffix: Option<String>,
}

impl Options {
    /// The process environment and the default model search.
    pub fn from_env() -> Self {
        Options {
            env: std::env::vars().collect(),
            models: ModelSearch::from_env(),
            run_dir: None,
            skip_bad_rows: false,
            save_suffix: None,
        }
    }
}

/// Check a pipeline file. Relative paths in it start at its directory.
pub fn check_file(
    path: &Path,
    opts: &Options,
) -> Result<(Report, Option<Pipeline>), std::io::Error> {
    check_file_with(path, opts, &[])
}

/// [`check_file`] with `--set` overrides applied to the source first: a
/// diagnostic of an override (an unknown name, a non-value) makes the
/// pipeline invalid like any other error.
pub fn check_file_with(
    path: &Path,
    opts: &Options,
    overrides: &[overrides::Override],
) -> Result<(Report, Option<Pipeline>), std::io::Error> {
    let bytes = std::fs::read(path)?;
    let src = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => return Ok((not_utf8(&path.display().to_string(), e), None)),
    };
    let (src, override_diags) = overrides::apply(&src, overrides);
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let (mut report, pipeline) = check_source(&path.display().to_string(), src, &base, opts);
    if !override_diags.is_empty() {
        let mut all = override_diags;
        all.append(&mut report.diags);
        report.diags = all;
        return Ok((report, None));
    }
    let pipeline = pipeline.map(|mut p| {
        p.file = abs;
        p
    });
    Ok((report, pipeline))
}

/// A file that is not UTF-8: one diagnostic at its first bad byte, over
/// the text as far as it is readable.
pub(crate) fn not_utf8(name: &str, e: std::string::FromUtf8Error) -> Report {
    let at = e.utf8_error().valid_up_to();
    let bytes = e.into_bytes();
    let bad = bytes[at];
    let source = String::from_utf8_lossy(&bytes).into_owned();
    // Offsets of the lossy text: everything before `at` is unchanged.
    let d = Diag::error(
        "not-utf8",
        Span::new(at, (at + 1).min(source.len())),
        format!("the file is not UTF-8: byte 0x{bad:02x} cannot start or continue a character"),
    )
    .label("here")
    .help("save the pipeline as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)");
    Report {
        name: name.to_string(),
        source: Arc::new(source),
        diags: vec![d],
    }
}

/// Check pipeline text; `base_dir` is where relative paths start. A
/// leading byte-order mark is ignored.
pub fn check_source(
    name: &str,
    src: String,
    base_dir: &Path,
    opts: &Options,
) -> (Report, Option<Pipeline>) {
    let src = match src.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => src,
    };
    let source = Arc::new(src);
    let mut report = Report {
        name: name.to_string(),
        source: source.clone(),
        diags: Vec::new(),
    };
    let file = match crate::syntax::parse(&source) {
        Ok(f) => f,
        Err(d) => {
            report.diags = d;
            return (report, None);
        }
    };
    let mut ck = Checker::new(&source, base_dir, opts);
    ck.run(&file);
    let mut diags = ck.diags;
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    report.diags = diags;
    if report.has_errors() {
        (report, None)
    } else {
        let mut p = ck.out;
        p.base_dir = base_dir.to_path_buf();
        (report, Some(p))
    }
}

/// What a name is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindKind {
    Let,
    Model,
    Data,
    Objective,
    Evaluator,
}

impl BindKind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            BindKind::Let => "a `let` value",
            BindKind::Model => "a model",
            BindKind::Data => "a data source",
            BindKind::Objective => "an objective",
            BindKind::Evaluator => "an evaluator",
        }
    }
}

pub(crate) struct Binding {
    kind: BindKind,
    span: Span,
    /// Defined (checked) already, in file order.
    ready: bool,
    used: bool,
}

pub(crate) struct Checker<'a> {
    src: &'a str,
    lines: LineIndex,
    base_dir: PathBuf,
    opts: &'a Options,
    pub(crate) diags: Vec<Diag>,
    bindings: HashMap<String, Binding>,
    lets: HashMap<String, ast::Value>,
    /// The interpolated text of every `let` string so far (`None`: it could
    /// not be interpolated, and that was reported at the `let`).
    let_text: HashMap<String, Option<String>>,
    pub(crate) out: Pipeline,
    /// Evaluators evaluated during a stage, per model.
    evaluated: HashMap<String, Vec<String>>,
    stage_count: usize,
}

impl<'a> Checker<'a> {
    fn new(src: &'a str, base_dir: &Path, opts: &'a Options) -> Self {
        Checker {
            src,
            lines: LineIndex::new(src),
            base_dir: base_dir.to_path_buf(),
            opts,
            diags: Vec::new(),
            bindings: HashMap::new(),
            lets: HashMap::new(),
            let_text: HashMap::new(),
            out: Pipeline::default(),
            evaluated: HashMap::new(),
            stage_count: 0,
        }
    }

    pub(crate) fn err(&mut self, d: Diag) {
        self.diags.push(d);
    }

    fn run(&mut self, file: &ast::File) {
        self.declare_bindings(file);
        for s in &file.stmts {
            self.check_stmt(s);
        }
        self.warn_unused();
        self.check_saves();
        if !self.diags.iter().any(|d| d.is_error()) {
            self.check_memory();
        }
    }

    /// The second pass: one statement, in order.
    fn check_stmt(&mut self, s: &ast::Stmt) {
        match &s.kind {
            StmtKind::Let { name, value } => {
                if self.is_first_def(name) {
                    self.define_let(name, value);
                    self.mark_ready(name);
                }
            }
            StmtKind::Model { name, chain } => {
                if self.is_first_def(name) {
                    if let Some(m) = self.check_model(name, chain) {
                        self.out.models.push(m);
                    }
                    self.mark_ready(name);
                }
            }
            StmtKind::Data {
                name,
                source,
                columns,
                columns_span,
                limit,
            } => {
                if self.is_first_def(name) {
                    let stmt = data::DataStmt {
                        name,
                        source,
                        columns: columns.as_deref(),
                        columns_span: *columns_span,
                        limit: limit.as_ref(),
                    };
                    if let Some(d) = self.check_data(&stmt) {
                        self.out.data.push(d);
                    }
                    self.mark_ready(name);
                }
            }
            StmtKind::Objective {
                name,
                loss,
                data,
                options,
                options_span,
            } => {
                if self.is_first_def(name) {
                    if let Some(o) = self.check_objective(name, loss, data, options, *options_span)
                    {
                        self.out.objectives.push(o);
                    }
                    self.mark_ready(name);
                }
            }
            StmtKind::Evaluator { name, call } => {
                if self.is_first_def(name) {
                    if let Some(e) = self.check_evaluator(name, call) {
                        self.out.evaluators.push(e);
                    }
                    self.mark_ready(name);
                }
            }
            StmtKind::Train { model, name, items } => {
                self.stage_count += 1;
                if let Some(t) = self.check_stage(s.span, model, name.as_ref(), items) {
                    self.out.steps.push(Step::Train(t));
                }
            }
            StmtKind::Save { model, path, best } => {
                if let Some(sv) = self.check_save(model, path, best.as_ref()) {
                    self.out.steps.push(Step::Save(sv));
                }
            }
            StmtKind::Expect { metric, op, value } => {
                if let Some(e) = self.check_expect(metric, *op, value) {
                    self.out.steps.push(Step::Expect(e));
                }
            }
        }
    }

    /// A path as written, resolved against the pipeline's directory.
    /// `~` is not a home directory in a pipeline (nothing expands it): a
    /// path that starts with it would name a directory called `~`.
    pub(crate) fn tilde_path(p: &str) -> bool {
        p == "~" || p.starts_with("~/")
    }

    pub(crate) fn resolve_path(&self, p: &str) -> PathBuf {
        let pb = PathBuf::from(p);
        let joined = if pb.is_absolute() {
            pb
        } else {
            self.base_dir.join(pb)
        };
        normalize(&joined)
    }
}

/// Remove `.` and `name/..` components without touching the file system.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
