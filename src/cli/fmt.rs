//! `stpipe fmt FILE...`: rewrite pipeline files in the canonical layout
//! (`--check`: only report, with a diff, for CI).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::diag::Report;
use crate::syntax::format::format_source;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write nothing: print a diff of each file that would change, and
    /// exit 1 if any would.
    #[arg(long)]
    pub check: bool,
}

/// What became of one file.
enum Outcome {
    Unchanged,
    Changed,
    /// It does not parse (diagnostics printed) or is not UTF-8.
    Invalid,
    /// It cannot be read or written.
    Unusable,
}

/// Exit code: 2 if a file could not be read or written, else 1 if one
/// does not parse or (with `--check`) would change, else 0.
pub fn run(args: &Args) -> ExitCode {
    let (mut unusable, mut failed) = (false, false);
    for f in &args.files {
        match one(f, args.check) {
            Outcome::Unchanged => {}
            Outcome::Changed => failed |= args.check,
            Outcome::Invalid => failed = true,
            Outcome::Unusable => unusable = true,
        }
    }
    if unusable {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn one(path: &Path, check: bool) -> Outcome {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return Outcome::Unusable;
        }
    };
    let src = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            super::print_human(&crate::check::not_utf8(&name, e));
            return Outcome::Invalid;
        }
    };
    let formatted = match format_source(&src) {
        Ok(s) => s,
        Err(diags) => {
            // Spans index the text after a byte-order mark, as in `check`.
            let text = src.strip_prefix('\u{feff}').unwrap_or(&src);
            super::print_human(&Report {
                name,
                source: Arc::new(text.to_string()),
                diags,
            });
            return Outcome::Invalid;
        }
    };
    if formatted == src {
        return Outcome::Unchanged;
    }
    if check {
        print!("{}", unified_diff(&name, &src, &formatted));
        return Outcome::Changed;
    }
    // The rewritten file keeps the permissions of the old one.
    let permissions = std::fs::metadata(path).ok().map(|m| m.permissions());
    match crate::fsio::write_atomic(path, formatted.as_bytes()) {
        Ok(()) => {
            if let Some(p) = permissions {
                let _ = std::fs::set_permissions(path, p);
            }
            eprintln!("formatted {name}");
            Outcome::Changed
        }
        Err(e) => {
            eprintln!("error: cannot write {name}: {e}");
            Outcome::Unusable
        }
    }
}

/// Lines of context around each change in a diff.
const CONTEXT: usize = 3;

/// Above this many line pairs the diff is one hunk replacing the whole
/// file, rather than a quadratic comparison.
const MAX_CELLS: usize = 16_000_000;

/// One line of an edit script.
#[derive(Clone, Copy, PartialEq)]
enum Edit {
    Keep,
    Delete,
    Insert,
}

/// The unified diff (`--- a/FILE`, `+++ b/FILE`, `@@` hunks) from `old`
/// to `new`.
pub(crate) fn unified_diff(name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let script = edit_script(&a, &b);
    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    // Positions (in `a` and `b`) at each step of the script.
    let mut at = Vec::with_capacity(script.len() + 1);
    let (mut i, mut j) = (0, 0);
    for e in &script {
        at.push((i, j));
        match e {
            Edit::Keep => (i, j) = (i + 1, j + 1),
            Edit::Delete => i += 1,
            Edit::Insert => j += 1,
        }
    }
    at.push((i, j));
    let changed: Vec<usize> = (0..script.len())
        .filter(|&k| script[k] != Edit::Keep)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k] + 1;
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT {
            end = changed[k] + 1;
            k += 1;
        }
        let end = (end + CONTEXT).min(script.len());
        let ((i0, j0), (i1, j1)) = (at[start], at[end]);
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            i0 + usize::from(i1 > i0),
            i1 - i0,
            j0 + usize::from(j1 > j0),
            j1 - j0
        ));
        for s in start..end {
            let (i, j) = at[s];
            match script[s] {
                Edit::Keep => out.push_str(&format!(" {}\n", a[i])),
                Edit::Delete => out.push_str(&format!("-{}\n", a[i])),
                Edit::Insert => out.push_str(&format!("+{}\n", b[j])),
            }
        }
    }
    out
}

/// A shortest edit script by longest common subsequence, after the
/// common prefix and suffix.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Edit> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (x, y) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut out = vec![Edit::Keep; pre];
    if x.len().saturating_mul(y.len()) > MAX_CELLS {
        out.extend(std::iter::repeat_n(Edit::Delete, x.len()));
        out.extend(std::iter::repeat_n(Edit::Insert, y.len()));
    } else {
        // lcs[i][j]: longest common subsequence of x[i..] and y[j..].
        let w = y.len() + 1;
        let mut lcs = vec![0u32; (x.len() + 1) * w];
        for i in (0..x.len()).rev() {
            for j in (0..y.len()).rev() {
                lcs[i * w + j] = if x[i] == y[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < x.len() || j < y.len() {
            if i < x.len() && j < y.len() && x[i] == y[j] {
                out.push(Edit::Keep);
                (i, j) = (i + 1, j + 1);
            } else if i < x.len() && (j == y.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                out.push(Edit::Delete);
                i += 1;
            } else {
                out.push(Edit::Insert);
                j += 1;
            }
        }
    }
    out.extend(std::iter::repeat_n(Edit::Keep, suf));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_has_hunks_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\n";
        let d = unified_diff("x.stp", old, new);
        assert_eq!(
            d,
            "--- a/x.stp\n+++ b/x.stp\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n"
        );
    }

    #[test]
    fn diff_of_insertions_and_far_apart_changes() {
        let old: String = (0..20).map(|i| format!("{i}\n")).collect();
        let new = old.replace("2\n", "2\nnew\n").replace("17\n", "");
        let d = unified_diff("f", &old, &new);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(d.contains("+new\n") && d.contains("-17\n"));
        assert!(unified_diff("f", "", "x\n").contains("@@ -0,0 +1,1 @@\n+x\n"));
    }
}
