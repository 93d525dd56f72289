//! JUnit XML for a run: the format every CI system displays (GitLab,
//! Jenkins, Azure, GitHub through a reporter action).
//!
//! Three suites: `check` (one case: the pipeline checked), `steps` (one
//! case per plan step: every data source read, model loaded, stage
//! trained, evaluation and save, which in a smoke run are its checks) and
//! `expect` (one case per `expect`, with the figure and the threshold). A
//! failed `expect` is a `<failure>`; a step that failed is an `<error>`;
//! steps not reached are `<skipped>`. Figures go into each case's
//! `<system-out>` and, for expectations, into `<properties>`.

use std::fmt::Write;

use crate::runtime::train::outcome::{ExpectOutcome, StepOutcome, StepStatus};

use super::RunReport;

/// One `<testcase>`.
struct Case {
    classname: String,
    name: String,
    seconds: f64,
    /// `(element, message, body)` for `failure`, `error` or `skipped`.
    verdict: Option<(&'static str, String, String)>,
    properties: Vec<(String, String)>,
    out: Option<String>,
}

/// Escape text for XML character data and attribute values (both quotes
/// too), dropping characters XML 1.0 cannot hold at all.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

fn check_case(r: &RunReport) -> Case {
    let errors = r
        .diagnostics
        .iter()
        .filter(|d| d["severity"] == "error")
        .count();
    // An unreadable file or a plan that cannot be built has no
    // diagnostics, and is still a failed check.
    let verdict = (r.status == super::RunStatus::Invalid).then(|| {
        let message = if errors > 0 {
            format!("{errors} error(s) in {}", r.pipeline)
        } else {
            format!("{} could not be read or planned", r.pipeline)
        };
        ("failure", message, r.diagnostics_text.clone())
    });
    Case {
        classname: "stpipe.check".into(),
        name: format!("check {}", r.pipeline),
        seconds: 0.0,
        verdict,
        properties: Vec::new(),
        out: (errors == 0 && !r.diagnostics_text.is_empty()).then(|| r.diagnostics_text.clone()),
    }
}

fn step_case(s: &StepOutcome) -> Case {
    let verdict = match s.status {
        StepStatus::Failed => {
            let msg = s.error.clone().unwrap_or_else(|| "failed".into());
            Some(("error", first_line(&msg), msg))
        }
        StepStatus::NotRun => Some((
            "skipped",
            "not run: an earlier step failed or the run was stopped".into(),
            String::new(),
        )),
        StepStatus::Executed | StepStatus::Reused => None,
    };
    let mut out = s.detail.clone().unwrap_or_default();
    if s.status == StepStatus::Reused {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("reused: an earlier run's recorded result stands");
    }
    Case {
        classname: format!("stpipe.{}", s.kind),
        name: s.label.clone(),
        seconds: s.seconds,
        verdict,
        properties: Vec::new(),
        out: (!out.is_empty()).then_some(out),
    }
}

fn expect_case(s: &StepOutcome, e: Option<&ExpectOutcome>) -> Case {
    let mut case = step_case(s);
    case.classname = "stpipe.expect".into();
    if let Some(e) = e {
        let figure = format!(
            "{}.{} = {:.6} (needs {} {})",
            e.evaluator, e.metric, e.value, e.op, e.threshold
        );
        if !e.passed {
            case.verdict = Some((
                "failure",
                format!(
                    "{}.{} = {:.4} does not hold {} {}",
                    e.evaluator, e.metric, e.value, e.op, e.threshold
                ),
                figure.clone(),
            ));
        }
        case.properties = vec![
            ("evaluator".into(), e.evaluator.clone()),
            ("metric".into(), e.metric.clone()),
            ("value".into(), format!("{}", e.value)),
            ("op".into(), e.op.clone()),
            ("threshold".into(), format!("{}", e.threshold)),
        ];
        case.out = Some(figure);
    }
    case
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The cases of each suite: `check`, then `steps`, then `expect`.
fn suites(r: &RunReport) -> Vec<(&'static str, Vec<Case>)> {
    let mut steps = Vec::new();
    let mut expects = Vec::new();
    let mut outcomes = r.summary.expectations.iter();
    for s in &r.summary.steps {
        if s.kind == "expect" {
            let e = match s.status {
                StepStatus::Executed | StepStatus::Reused => outcomes.next(),
                _ => None,
            };
            expects.push(expect_case(s, e));
        } else {
            steps.push(step_case(s));
        }
    }
    vec![
        ("check", vec![check_case(r)]),
        ("steps", steps),
        ("expect", expects),
    ]
}

fn count(cases: &[Case], element: &str) -> usize {
    cases
        .iter()
        .filter(|c| c.verdict.as_ref().is_some_and(|v| v.0 == element))
        .count()
}

fn write_case(x: &mut String, c: &Case) {
    let _ = write!(
        x,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape(&c.classname),
        escape(&c.name),
        c.seconds
    );
    if c.verdict.is_none() && c.properties.is_empty() && c.out.is_none() {
        x.push_str("/>\n");
        return;
    }
    x.push_str(">\n");
    if !c.properties.is_empty() {
        x.push_str("      <properties>\n");
        for (k, v) in &c.properties {
            let _ = writeln!(
                x,
                "        <property name=\"{}\" value=\"{}\"/>",
                escape(k),
                escape(v)
            );
        }
        x.push_str("      </properties>\n");
    }
    if let Some((el, msg, body)) = &c.verdict {
        let kind = match *el {
            "failure" => " type=\"expect\"",
            "error" => " type=\"run-error\"",
            _ => "",
        };
        if body.is_empty() {
            let _ = writeln!(x, "      <{el} message=\"{}\"{kind}/>", escape(msg));
        } else {
            let _ = writeln!(
                x,
                "      <{el} message=\"{}\"{kind}>{}</{el}>",
                escape(msg),
                escape(body)
            );
        }
    }
    if let Some(out) = &c.out {
        let _ = writeln!(x, "      <system-out>{}</system-out>", escape(out));
    }
    x.push_str("    </testcase>\n");
}

/// The JUnit XML document of a run.
pub fn render(r: &RunReport) -> String {
    let suites = suites(r);
    let all: Vec<&Case> = suites.iter().flat_map(|(_, c)| c).collect();
    let total = |el: &str| {
        all.iter()
            .filter(|c| c.verdict.as_ref().is_some_and(|v| v.0 == el))
            .count()
    };
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"stpipe run {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        escape(&r.pipeline),
        all.len(),
        total("failure"),
        total("error"),
        total("skipped"),
        r.seconds
    );
    for (name, cases) in &suites {
        let time: f64 = cases.iter().map(|c| c.seconds).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
            escape(name),
            cases.len(),
            count(cases, "failure"),
            count(cases, "error"),
            count(cases, "skipped"),
        );
        for c in cases {
            write_case(&mut x, c);
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RunStatus;
    use crate::runtime::train::outcome::RunSummary;

    fn step(kind: &str, label: &str, status: StepStatus) -> StepOutcome {
        StepOutcome {
            label: label.into(),
            kind: kind.into(),
            status,
            seconds: 1.5,
            detail: None,
            error: (status == StepStatus::Failed).then(|| "boom <here>\nmore".to_string()),
        }
    }

    fn report(steps: Vec<StepOutcome>, expectations: Vec<ExpectOutcome>) -> RunReport {
        RunReport {
            pipeline: "p.stp".into(),
            run_dir: "runs/p".into(),
            status: RunStatus::Error,
            exit_code: 1,
            seconds: 3.0,
            diagnostics: Vec::new(),
            diagnostics_text: String::new(),
            summary: RunSummary {
                steps,
                expectations,
                ..RunSummary::default()
            },
        }
    }

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(
            escape("a<b & \"c\" 'd'\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;"
        );
    }

    #[test]
    fn counts_failures_errors_and_skips_per_suite() {
        let e = |passed| ExpectOutcome {
            evaluator: "dev".into(),
            metric: "spearman_cosine".into(),
            op: ">=".into(),
            threshold: 0.8,
            value: 0.5,
            passed,
        };
        let r = report(
            vec![
                step("load-data", "load data d", StepStatus::Executed),
                step("train", "train s", StepStatus::Reused),
                step(
                    "expect",
                    "expect dev.spearman_cosine >= 0.8",
                    StepStatus::Executed,
                ),
                step(
                    "expect",
                    "expect dev.spearman_cosine >= 0.8",
                    StepStatus::Executed,
                ),
                step("save", "save m", StepStatus::Failed),
                step("expect", "expect x", StepStatus::NotRun),
            ],
            vec![e(false), e(true)],
        );
        let x = render(&r);
        assert!(
            x.contains("tests=\"7\" failures=\"1\" errors=\"1\" skipped=\"1\""),
            "{x}"
        );
        assert!(
            x.contains(
                "<testsuite name=\"expect\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""
            ),
            "{x}"
        );
        assert!(
            x.contains("message=\"boom &lt;here&gt;\" type=\"run-error\""),
            "{x}"
        );
        assert!(x.contains("does not hold &gt;= 0.8"), "{x}");
        assert!(
            x.contains("<property name=\"value\" value=\"0.5\"/>"),
            "{x}"
        );
    }
}
