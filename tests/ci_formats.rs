//! `stpipe check --format github` (GitHub Actions workflow commands) and
//! `--format sarif` (SARIF 2.1.0): the same diagnostics as `--format json`,
//! at the same places, in the syntax each consumer documents.

use crate::common;

use std::process::Command;

use serde_json::Value;

fn check(format: &str, files: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stpipe"));
    c.current_dir(common::repo())
        .arg("--model-path")
        .arg(common::shared_dir().join("models"))
        .args(["check", "--format", format])
        .args(files);
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
    )
}

const FILES: &[&str] = &[
    "tests/invalid/prompt-errors.stp",
    "tests/invalid/unknown-loss.stp",
];

/// `(file, severity, line, column, end line, end column, code)` of every
/// diagnostic, from the JSON format.
fn expected() -> Vec<(String, String, u64, u64, u64, u64, String)> {
    let (code, out) = check("json", FILES);
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mut v = Vec::new();
    for f in doc["files"].as_array().unwrap() {
        for d in f["diagnostics"].as_array().unwrap() {
            let n = |k: &str| d[k].as_u64().unwrap();
            v.push((
                f["file"].as_str().unwrap().to_string(),
                d["severity"].as_str().unwrap().to_string(),
                n("line"),
                n("column"),
                n("end_line"),
                n("end_column"),
                d["code"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert!(v.len() >= 5, "{v:?}");
    v
}

/// Parse one workflow command as GitHub documents it:
/// `::error file={name},line={line},endLine={endLine},title={title}::{message}`
/// (properties comma-separated `key=value`, `%`, `\r`, `\n`, `:` and `,`
/// percent-encoded in values, `%`, `\r`, `\n` in the message).
fn parse_command(line: &str) -> (String, Vec<(String, String)>, String) {
    let rest = line.strip_prefix("::").expect("starts with ::");
    let (head, message) = rest.split_once("::").expect("a second ::");
    let (command, props) = head.split_once(' ').expect("command and properties");
    assert!(
        ["error", "warning", "notice"].contains(&command),
        "{command}"
    );
    let props: Vec<(String, String)> = props
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            assert!(!v.contains(':') && !v.contains(','), "{v}");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert!(!message.contains('\n') && !message.contains('\r'));
    (command.to_string(), props, message.to_string())
}

#[test]
fn github_annotations_follow_the_documented_syntax() {
    let want = expected();
    let (code, out) = check("github", FILES);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), want.len(), "{out}");
    for (line, w) in lines.iter().zip(&want) {
        let (command, props, message) = parse_command(line);
        let get = |k: &str| {
            props
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k} in {line}"))
        };
        assert_eq!(command, w.1);
        assert_eq!(get("file"), w.0);
        assert_eq!(get("line"), w.2.to_string());
        assert_eq!(get("col"), w.3.to_string());
        assert_eq!(get("endLine"), w.4.to_string());
        if w.2 == w.4 {
            assert_eq!(get("endColumn"), w.5.to_string());
        }
        assert_eq!(get("title"), format!("stpipe {}", w.6));
        assert!(!message.is_empty());
    }
    // A help line travels as an encoded newline.
    assert!(out.contains("%0Ahelp: "), "{out}");
    // A valid file prints nothing and exits 0.
    let tmp = common::tiny_workspace(16);
    let valid = tmp.path().join("ok.stp");
    std::fs::write(&valid, common::tiny_pipeline("out", "max_steps: 1")).unwrap();
    let (code, out) = check("github", &[valid.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn sarif_log_holds_every_diagnostic() {
    let want = expected();
    let (code, out) = check("sarif", FILES);
    assert_eq!(code, 1);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "stpipe");
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), want.len());
    for (r, w) in results.iter().zip(&want) {
        assert!(rules.contains(&r["ruleId"].as_str().unwrap()));
        assert_eq!(r["ruleId"], w.6.as_str());
        assert_eq!(r["level"], w.1.as_str());
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], w.0.as_str());
        let reg = &loc["region"];
        assert_eq!(
            (reg["startLine"].as_u64(), reg["startColumn"].as_u64()),
            (Some(w.2), Some(w.3))
        );
        assert_eq!(
            (reg["endLine"].as_u64(), reg["endColumn"].as_u64()),
            (Some(w.4), Some(w.5))
        );
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
    }
    // An unreadable file is a result too, and exit 2.
    let (code, out) = check("sarif", &["no/such/file.stp"]);
    assert_eq!(code, 2);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["runs"][0]["results"][0]["ruleId"], "unreadable-file");
}
