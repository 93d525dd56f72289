//! Every `tests/invalid/NAME.stp` is checked and its diagnostics
//! (`error LINE:COL [code] message`, then `    also LINE:COL: label` for
//! every other place involved, then `    help: ...`) must equal
//! `NAME.expected`.
//! Regenerate the expectations with `UPDATE=1 cargo test --test invalid`
//! (and review the diff).

use crate::common;

use std::path::Path;

#[test]
fn invalid_pipelines_report_exact_diagnostics() {
    let dir = common::repo().join("tests/invalid");
    let opts = common::options();
    let update = std::env::var_os("UPDATE").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "stp"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} invalid pipelines", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let (report, pipeline) = stpipe::check::check_file(f, &opts).unwrap();
        // One line per diagnostic, then its help line.
        let mut got = String::new();
        for (line, d) in report.to_plain().lines().zip(&report.diags) {
            got.push_str(line);
            got.push('\n');
            for (sp, label) in &d.also {
                let (l, c) = stpipe::diag::line_col(&report.source, sp.start);
                got.push_str(&format!("    also {l}:{c}: {label}\n"));
            }
            if let Some(h) = &d.help {
                got.push_str(&format!("    help: {h}\n"));
            }
        }
        // Absolute paths in messages: the repository, or its parent
        // (where `shared/` lives).
        let repo = common::repo().display().to_string();
        let parent = common::repo().parent().unwrap().display().to_string();
        let got = got.replace(&repo, "<repo>").replace(&parent, "<parent>");
        let exp_path = f.with_extension("expected");
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if !report.has_errors() || pipeline.is_some() {
            failures.push(format!("{name}: no error reported"));
        }
        if update {
            std::fs::write(&exp_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&exp_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
        // Diagnostics render without panicking.
        for d in report.miette() {
            let mut s = String::new();
            miette::GraphicalReportHandler::new()
                .render_report(&mut s, &d)
                .unwrap();
        }
        let _ = Path::new(&name);
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) (regenerate with UPDATE=1 after review):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
