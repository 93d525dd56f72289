//! `stpipe run FILE --sweep NAME=V1,V2,...`: one run per value (per
//! combination, with several `--sweep`s), each an ordinary run with
//! `--set NAME=V` in its own run directory `RUN_DIR/NAME=V`, its saves
//! beside the plain run's (`out@NAME=V`), then a table of the final
//! metrics in `RUN_DIR/sweep.md` and `RUN_DIR/sweep.json`.
//!
//! Each point keeps its own run directory and so its own recorded steps:
//! running the sweep again reuses every finished point, and adding a value
//! trains only the new one.

use std::fmt::Write;
use std::process::ExitCode;

use crate::check::overrides::{Override, Sweep};
use crate::check::Options;
use crate::report::{RunReport, RunStatus};
use crate::runtime::train::run::RunOptions;

use super::run::{run_once, with_reports, write_reports, Args};

/// Every combination of the sweeps' values, as overrides (the first sweep
/// varies slowest).
fn points(sweeps: &[Sweep]) -> Vec<Vec<Override>> {
    let mut out: Vec<Vec<Override>> = vec![Vec::new()];
    for s in sweeps {
        out = out
            .into_iter()
            .flat_map(|p| {
                (0..s.values.len()).map(move |i| {
                    let mut p = p.clone();
                    p.push(s.point(i));
                    p
                })
            })
            .collect();
    }
    out
}

/// A point's name for directories and files: `lr=2e-5,bs=32`, with every
/// character a file name may not safely hold replaced by `_`.
fn point_name(point: &[Override]) -> String {
    let raw: Vec<String> = point
        .iter()
        .map(|o| format!("{}={}", o.name, o.value))
        .collect();
    raw.join(",")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=,.+-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(args: &Args, opts: &Options, overrides: &[Override]) -> ExitCode {
    let base = args.run.options(&args.file, opts);
    let names: Vec<&str> = args.sweep.iter().map(|s| s.name.as_str()).collect();
    if let Some(o) = overrides.iter().find(|o| names.contains(&o.name.as_str())) {
        eprintln!(
            "error: `{}` is both set (`--set`) and swept (`--sweep`): give it one or the other",
            o.name
        );
        return ExitCode::from(2);
    }
    let points = points(&args.sweep);
    let mut seen = std::collections::HashSet::new();
    if let Some(p) = points.iter().find(|p| !seen.insert(point_name(p))) {
        eprintln!(
            "error: two sweep points share the directory name `{}`: give values that differ in letters, digits or `.+-_`",
            point_name(p)
        );
        return ExitCode::from(2);
    }
    let mut rows: Vec<(Vec<Override>, String, RunReport)> = Vec::new();
    for (i, point) in points.iter().enumerate() {
        let name = point_name(point);
        eprintln!("== sweep point {}/{}: {name}", i + 1, points.len());
        let run_opts = RunOptions {
            run_dir: base.run_dir.join(&name),
            progress: !args.quiet,
            ..base.clone()
        };
        let opts = Options {
            save_suffix: Some(format!("@{name}")),
            ..opts.clone()
        };
        let mut all = overrides.to_vec();
        all.extend(point.iter().cloned());
        let mut report = run_once(args, &opts, &all, &run_opts);
        let written = write_reports(&report, &args.report, Some(&name));
        report.exit_code = with_reports(report.exit_code, written);
        let stop = report.status == RunStatus::Interrupted;
        rows.push((point.clone(), name, report));
        if stop {
            break;
        }
    }
    let (md, json) = table(&args.sweep, &rows);
    for (file, text) in [("sweep.md", md.as_str()), ("sweep.json", json.as_str())] {
        let path = base.run_dir.join(file);
        let r = crate::fsio::create_dir_all(&base.run_dir)
            .and_then(|()| crate::fsio::write_atomic(&path, text.as_bytes()));
        if let Err(e) = r {
            eprintln!("warning: cannot write {}: {e}", path.display());
        }
    }
    println!("{md}");
    eprintln!("sweep table: {}", base.run_dir.join("sweep.md").display());
    // The worst outcome decides: stopped, then failed, then an `expect`.
    let rank = |code: u8| match code {
        0 => 0,
        3 => 1,
        130 => 3,
        _ => 2,
    };
    let worst = rows
        .iter()
        .map(|(_, _, r)| r.exit_code)
        .max_by_key(|c| rank(*c))
        .unwrap_or(0);
    ExitCode::from(worst)
}

/// The sweep table as Markdown and JSON: a row per point, its status and
/// the final value of every evaluator's primary metric.
fn table(sweeps: &[Sweep], rows: &[(Vec<Override>, String, RunReport)]) -> (String, String) {
    let mut metrics: Vec<String> = Vec::new();
    for (_, _, r) in rows {
        for (e, m, _) in &r.summary.final_metrics {
            let key = format!("{e}.{m}");
            if !metrics.contains(&key) {
                metrics.push(key);
            }
        }
    }
    let mut md = String::new();
    let head: Vec<String> = sweeps
        .iter()
        .map(|s| s.name.clone())
        .chain(["status".to_string(), "expect".to_string()])
        .chain(metrics.iter().cloned())
        .chain(["run directory".to_string()])
        .collect();
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
    let mut json_rows = Vec::new();
    for (point, _, r) in rows {
        let value_of = |key: &str| {
            r.summary
                .final_metrics
                .iter()
                .find(|(e, m, _)| format!("{e}.{m}") == key)
                .map(|(_, _, v)| *v)
        };
        let failed = r.summary.failed_expectations().len();
        let expect = if r.summary.expectations.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{}/{} held",
                r.summary.expectations.len() - failed,
                r.summary.expectations.len()
            )
        };
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let cells: Vec<String> = point
            .iter()
            .map(|o| o.value.replace('|', "\\|"))
            .chain([status.clone(), expect])
            .chain(metrics.iter().map(|k| {
                value_of(k)
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into())
            }))
            .chain([r.run_dir.clone()])
            .collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        json_rows.push(serde_json::json!({
            "values": point.iter().map(|o| (o.name.clone(), serde_json::json!(o.value))).collect::<serde_json::Map<_, _>>(),
            "status": status,
            "exit_code": r.exit_code,
            "run_dir": r.run_dir,
            "final_metrics": metrics.iter().map(|k| (k.clone(), serde_json::json!(value_of(k)))).collect::<serde_json::Map<_, _>>(),
            "expectations": r.summary.expectations,
            "saved": r.summary.saved,
        }));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "points": json_rows }))
        .unwrap_or_default()
        + "\n";
    (md, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_every_combination_with_safe_names() {
        let s = |n: &str, v: &[&str]| Sweep {
            name: n.into(),
            values: v.iter().map(|x| x.to_string()).collect(),
        };
        let p = points(&[s("lr", &["1e-5", "2e-5"]), s("name", &["\"a/b\"", "\"c\""])]);
        let names: Vec<String> = p.iter().map(|p| point_name(p)).collect();
        assert_eq!(
            names,
            [
                "lr=1e-5,name=_a_b_",
                "lr=1e-5,name=_c_",
                "lr=2e-5,name=_a_b_",
                "lr=2e-5,name=_c_"
            ]
        );
    }
}
