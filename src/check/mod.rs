//! The checker: resolves names, arguments, dimensions, data columns and
//! files of a parsed pipeline against the [registry](crate::registry), and
//! reports every problem at once.
//!
//! Entry points: [`check_file`] and [`check_source`]; both return a
//! [`Report`] (diagnostics) and, when there is no error, a typed
//! [`Pipeline`].

mod args;
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
        // First pass: every binding, so that duplicates and forward
        // references are reported precisely.
        for s in &file.stmts {
            let (name, kind) = match &s.kind {
                StmtKind::Let { name, .. } => (name, BindKind::Let),
                StmtKind::Model { name, .. } => (name, BindKind::Model),
                StmtKind::Data { name, .. } => (name, BindKind::Data),
                StmtKind::Objective { name, .. } => (name, BindKind::Objective),
                StmtKind::Evaluator { name, .. } => (name, BindKind::Evaluator),
                _ => continue,
            };
            if let Some(prev) = self.bindings.get(&name.name) {
                let (l, _) = self.lines.line_col(self.src, prev.span.start);
                let d = Diag::error(
                    "duplicate-binding",
                    name.span,
                    format!("`{}` is already defined (line {l})", name.name),
                )
                .label("defined again here")
                .also(prev.span, "first defined here")
                .help("give each model, data source, objective, evaluator and let a distinct name");
                self.err(d);
                continue;
            }
            self.bindings.insert(
                name.name.clone(),
                Binding {
                    kind,
                    span: name.span,
                    ready: false,
                    used: false,
                },
            );
        }
        for s in &file.stmts {
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
                        if let Some(o) =
                            self.check_objective(name, loss, data, options, *options_span)
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
        self.warn_unused();
        self.check_saves();
        if !self.diags.iter().any(|d| d.is_error()) {
            self.check_memory();
        }
    }

    /// Whether this statement is the one that defined `name` (duplicates are
    /// skipped after their error).
    fn is_first_def(&self, name: &ast::Ident) -> bool {
        self.bindings
            .get(&name.name)
            .is_some_and(|b| b.span == name.span)
    }

    /// The kind of binding `name` names, if any.
    pub(crate) fn binding_kind(&self, name: &str) -> Option<BindKind> {
        self.bindings.get(name).map(|b| b.kind)
    }

    fn mark_ready(&mut self, name: &ast::Ident) {
        if let Some(b) = self.bindings.get_mut(&name.name) {
            b.ready = true;
        }
    }

    /// Resolve a reference to a binding of `kind`; reports undefined names
    /// (with did-you-mean), wrong kinds and uses before definition.
    pub(crate) fn resolve(&mut self, id: &ast::Ident, kind: BindKind) -> Option<String> {
        match self.bindings.get_mut(&id.name) {
            Some(b) if b.kind == kind && b.ready => {
                b.used = true;
                Some(id.name.clone())
            }
            Some(b) if b.kind == kind => {
                b.used = true;
                let (l, _) = self.lines.line_col(self.src, b.span.start);
                let d = Diag::error(
                    "use-before-definition",
                    id.span,
                    format!("`{}` is used before its definition (line {l})", id.name),
                )
                .help("move the definition above its first use");
                self.err(d);
                None
            }
            Some(b) => {
                let other = b.kind.noun();
                let d = Diag::error(
                    "wrong-kind",
                    id.span,
                    format!("`{}` is {other}, not {}", id.name, kind.noun()),
                )
                .help(format!("name {} here", kind.noun()));
                self.err(d);
                None
            }
            None => {
                let candidates: Vec<&str> = self
                    .bindings
                    .iter()
                    .filter(|(_, b)| b.kind == kind)
                    .map(|(n, _)| n.as_str())
                    .collect();
                let help = match crate::registry::did_you_mean(&id.name, candidates.iter().copied())
                {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if candidates.is_empty() => {
                        format!("define {} first", kind.noun())
                    }
                    None => {
                        let mut c = candidates.clone();
                        c.sort();
                        format!("defined: {}", c.join(", "))
                    }
                };
                let noun = kind
                    .noun()
                    .trim_start_matches("a ")
                    .trim_start_matches("an ");
                let d = Diag::error(
                    "undefined",
                    id.span,
                    format!("undefined {noun} `{}`", id.name),
                )
                .help(help);
                self.err(d);
                None
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

    fn warn_unused(&mut self) {
        let mut unused: Vec<(Span, String, BindKind)> = self
            .bindings
            .iter()
            .filter(|(_, b)| !b.used && b.ready)
            .filter(|(_, b)| {
                matches!(
                    b.kind,
                    BindKind::Let | BindKind::Data | BindKind::Objective | BindKind::Evaluator
                )
            })
            .map(|(n, b)| (b.span, n.clone(), b.kind))
            .collect();
        // A let read by a string that was not interpolated (because of an
        // error nearby) still counts as used.
        let referenced = lets::referenced_names(self.src);
        unused.retain(|(_, n, k)| *k != BindKind::Let || !referenced.contains(n.as_str()));
        // A mined source is a result of its own: the run writes it.
        unused.retain(|(_, n, k)| {
            *k != BindKind::Data || !self.out.data_source(n).is_some_and(|d| d.is_recorded())
        });
        unused.sort_by_key(|u| u.0.start);
        for (span, name, kind) in unused {
            let (msg, help) = match kind {
                BindKind::Let => (
                    format!("`{name}` is never used"),
                    "use it as a value or as `${NAME}` in a string, or remove it",
                ),
                BindKind::Data => (
                    format!("data source `{name}` is never used"),
                    "use it in an objective or evaluator, or remove it",
                ),
                BindKind::Objective => (
                    format!("objective `{name}` is not trained in any stage"),
                    "list it in a train block's `objectives:`, or remove it",
                ),
                _ => (
                    format!("evaluator `{name}` is never run"),
                    "use it in `evaluate:`, `expect` or `save ... best by`, or remove it",
                ),
            };
            self.diags
                .push(Diag::warning("unused", span, msg).help(help));
        }
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
