//! `report.html`: one self-contained page about a run (the pipeline, the
//! plan, the curves, the final table, the expectations, every step), for
//! a person or a CI artifact. Everything is inline (the curves as a PNG
//! data URI, the style in the page, no script), so it opens from disk in
//! any browser without a server or a network.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::runtime::train::outcome::{RunSummary, StepStatus};

use super::junit::escape;
use super::metrics_log::MetricsLog;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1450px;color:#222}\
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.pass{color:#17692b;font-weight:600}.fail{color:#b00020;font-weight:600}.muted{color:#777}\
pre{background:#f7f7f7;border:1px solid #ddd;padding:.8em;overflow:auto;font-size:.9em}\
img{max-width:100%;border:1px solid #ddd}";

/// What the page is made of, read from a run directory.
struct Run {
    dir: PathBuf,
    summary: Option<RunSummary>,
    log: MetricsLog,
    pipeline: Option<String>,
    plan: Option<String>,
}

fn read_run(dir: &Path) -> std::io::Result<Run> {
    let log = match MetricsLog::read(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(std::io::Error::new(
                e.kind(),
                format!(
                    "{} has no metrics.jsonl: is it the run directory of a `stpipe run`?",
                    dir.display()
                ),
            ))
        }
        Err(e) => return Err(e),
    };
    let summary = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Ok(Run {
        dir: dir.to_path_buf(),
        summary,
        log,
        pipeline: std::fs::read_to_string(dir.join("pipeline.stp")).ok(),
        plan: std::fs::read_to_string(dir.join("plan.txt")).ok(),
    })
}

/// Write `out` (default `run_dir/report.html`) for a run directory;
/// returns its path.
pub fn write(run_dir: &Path, out: Option<&Path>) -> std::io::Result<PathBuf> {
    let run = read_run(run_dir)?;
    let png = super::curves::render(&run.log)?;
    let page = render(&run, &png);
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join("report.html"));
    crate::fsio::write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

fn render(run: &Run, png: &[u8]) -> String {
    let title = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.dir.display().to_string());
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>stpipe run {t}</title><style>{STYLE}</style></head><body>\n\
         <h1>stpipe run <code>{t}</code></h1>\n",
        t = escape(&title)
    );
    status_line(&mut h, run.summary.as_ref());
    h.push_str("<h2>Final metrics</h2>\n");
    final_table(&mut h, run);
    h.push_str("<h2>Expectations</h2>\n");
    expectations(&mut h, run.summary.as_ref());
    let _ = write!(
        h,
        "<h2>Curves</h2>\n<img id=\"curves\" alt=\"loss, learning rate and evaluator metrics against the step\" src=\"data:image/png;base64,{}\">\n",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    h.push_str("<h2>Steps</h2>\n");
    steps(&mut h, run.summary.as_ref());
    pre(&mut h, "pipeline", "Pipeline", run.pipeline.as_deref());
    pre(&mut h, "plan", "Plan", run.plan.as_deref());
    h.push_str("</body></html>\n");
    h
}

fn status_line(h: &mut String, s: Option<&RunSummary>) {
    let (class, text) = match s {
        None => (
            "muted",
            "no summary.json: the run did not finish".to_string(),
        ),
        Some(s) if s.error.is_some() => (
            "fail",
            format!("failed: {}", s.error.as_deref().unwrap_or_default()),
        ),
        Some(s) if !s.failed_expectations().is_empty() => (
            "fail",
            format!(
                "finished; {} expectation(s) did not hold",
                s.failed_expectations().len()
            ),
        ),
        Some(_) => ("pass", "finished; every expectation held".to_string()),
    };
    let _ = writeln!(
        h,
        "<p id=\"status\" class=\"{class}\">{}</p>",
        escape(&text)
    );
}

fn final_table(h: &mut String, run: &Run) {
    h.push_str("<table id=\"final-metrics\"><tr><th>evaluator</th><th>metric</th><th>before training</th><th>final</th><th>best during training</th></tr>\n");
    let finals = run
        .summary
        .as_ref()
        .map(|s| s.final_metrics.clone())
        .unwrap_or_default();
    for (e, m, v) in &finals {
        let before = run.summary.as_ref().and_then(|s| s.baseline(e, m));
        let best = run.log.best(e, m);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{v:.4}</td><td class=\"num\">{}</td></tr>",
            escape(e),
            escape(m),
            before.map(|b| format!("{b:.4}")).unwrap_or_else(|| "-".into()),
            best.map(|(x, y)| format!("{y:.4} (step {x})"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    h.push_str("</table>\n");
    for (e, metrics) in &run.log.finals {
        let _ = write!(
            h,
            "<details><summary>every metric of <code>{}</code> after training</summary><table>",
            escape(e)
        );
        for (k, v) in metrics {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{v:.6}</td></tr>",
                escape(k)
            );
        }
        h.push_str("</table></details>\n");
    }
}

fn expectations(h: &mut String, s: Option<&RunSummary>) {
    let list = s.map(|s| s.expectations.as_slice()).unwrap_or_default();
    if list.is_empty() {
        h.push_str("<p id=\"expectations\" class=\"muted\">none</p>\n");
        return;
    }
    h.push_str("<table id=\"expectations\"><tr><th></th><th>expect</th><th>value</th></tr>\n");
    for e in list {
        let (class, mark) = if e.passed {
            ("pass", "ok")
        } else {
            ("fail", "FAIL")
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"{class}\">{mark}</td><td><code>{}.{} {} {}</code></td><td class=\"num\">{:.4}</td></tr>",
            escape(&e.evaluator),
            escape(&e.metric),
            escape(&e.op),
            e.threshold,
            e.value
        );
    }
    h.push_str("</table>\n");
}

fn steps(h: &mut String, s: Option<&RunSummary>) {
    h.push_str("<table id=\"steps\"><tr><th>step</th><th>status</th><th>seconds</th><th>detail</th></tr>\n");
    for st in s.map(|s| s.steps.as_slice()).unwrap_or_default() {
        let (class, status) = match st.status {
            StepStatus::Executed => ("pass", "ran"),
            StepStatus::Reused => ("muted", "reused"),
            StepStatus::Failed => ("fail", "failed"),
            StepStatus::NotRun => ("muted", "not run"),
        };
        let detail = st.error.as_deref().or(st.detail.as_deref()).unwrap_or("");
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=\"{class}\">{status}</td><td class=\"num\">{:.2}</td><td>{}</td></tr>",
            escape(&st.label),
            st.seconds,
            escape(detail)
        );
    }
    h.push_str("</table>\n");
}

fn pre(h: &mut String, id: &str, title: &str, text: Option<&str>) {
    let _ = write!(h, "<h2>{title}</h2>\n<pre id=\"{id}\">");
    match text {
        Some(t) => h.push_str(&escape(t)),
        None => h.push_str("(not recorded in the run directory)"),
    }
    h.push_str("</pre>\n");
}
