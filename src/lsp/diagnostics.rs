//! Diagnostics: the checker run on the editor's text, its findings in the
//! protocol's terms.
//!
//! The text is checked as `stpipe check` checks the file on disk, with
//! relative paths resolved from the document's directory, so what the
//! editor underlines is what `check` would report once the file is saved.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag, Location,
    NumberOrString, Uri,
};

use super::text::{uri_to_path, LineMap};
use crate::check::{check_source, Options};
use crate::diag::{Diag, Level, Span};

/// The diagnostics of document `uri` with contents `text`.
pub fn diagnostics(uri: &Uri, text: &str, lines: &LineMap, opts: &Options) -> Vec<Diagnostic> {
    let path = uri_to_path(uri);
    let base = match path.as_deref().and_then(Path::parent) {
        Some(dir) => dir.to_path_buf(),
        // An unsaved document: paths start where the server runs.
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let name = path.map_or_else(|| uri.as_str().to_string(), |p| p.display().to_string());
    let checked = catch_unwind(AssertUnwindSafe(|| {
        check_source(&name, text.to_string(), &base, opts)
    }));
    let report = match checked {
        Ok((report, _)) => report,
        Err(_) => {
            // The panic message went to stderr through the panic hook.
            eprintln!("stpipe lsp: the checker failed on {name}");
            return vec![internal_error()];
        }
    };
    // The checker drops a leading byte-order mark; its spans are then
    // offsets into the rest.
    let shift = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    report
        .diags
        .iter()
        .map(|d| convert(d, shift, uri, text, lines))
        .collect()
}

fn internal_error() -> Diagnostic {
    Diagnostic {
        severity: Some(DiagnosticSeverity::ERROR),
        source: Some("stpipe".to_string()),
        message: "internal error: the checker failed on this text (see the server's log)"
            .to_string(),
        ..Diagnostic::default()
    }
}

/// One diagnostic: the help line goes under the message (editors show
/// the message whole, and the help is usually the fix); the other places
/// involved become related information.
fn convert(d: &Diag, shift: usize, uri: &Uri, text: &str, lines: &LineMap) -> Diagnostic {
    let range = |s: Span| lines.range(text, Span::new(s.start + shift, s.end + shift));
    let mut message = d.message.clone();
    if let Some(h) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(h);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .also
        .iter()
        .map(|(s, label)| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), range(*s)),
            message: label.clone(),
        })
        .collect();
    Diagnostic {
        range: range(d.span),
        severity: Some(match d.level {
            Level::Error => DiagnosticSeverity::ERROR,
            Level::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("stpipe".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        // Editors grey out what is never used.
        tags: (d.code == "unused").then(|| vec![DiagnosticTag::UNNECESSARY]),
        ..Diagnostic::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_become_utf16_ranges_after_a_bom() {
        let text = "\u{feff}let é = 1";
        let lines = LineMap::new(text);
        let uri: Uri = "untitled:x".parse().unwrap();
        let d = diagnostics(&uri, text, &lines, &Options::default());
        assert!(!d.is_empty(), "{d:?}");
        // The syntax error is at `é` (after the BOM, one UTF-16 unit).
        assert_eq!(d[0].range.start, lsp_types::Position::new(0, 5));
        assert_eq!(d[0].severity, Some(DiagnosticSeverity::ERROR));
    }
}
