//! `stpipe check FILE...`

use std::path::PathBuf;
use std::process::ExitCode;

use super::DiagFormat;
use crate::check::overrides::Override;
use crate::check::{check_file_with, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format of diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: DiagFormat,
    /// The run directory the run will use (saves may not write into it)
    /// [default: runs/<pipeline name>, as `stpipe run`].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

pub fn run(args: &Args, opts: &Options, overrides: &[Override]) -> ExitCode {
    let mut invalid = false;
    let mut usage = false;
    let mut json = Vec::new();
    let mut sarif_reports = Vec::new();
    let mut unreadable = Vec::new();
    for f in &args.files {
        // Saves are checked against the run directory `stpipe run` uses by
        // default.
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into());
        let opts = Options {
            run_dir: Some(
                args.run_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("runs").join(stem)),
            ),
            ..opts.clone()
        };
        match check_file_with(f, &opts, overrides) {
            Ok((report, _)) => {
                invalid |= report.has_errors();
                match args.format {
                    DiagFormat::Human => {
                        super::print_human(&report);
                        let errors = report.diags.iter().filter(|d| d.is_error()).count();
                        let warnings = report.diags.len() - errors;
                        if errors == 0 {
                            eprintln!("{}: ok ({warnings} warning(s))", f.display());
                        } else {
                            eprintln!("{}: {errors} error(s), {warnings} warning(s)", f.display());
                        }
                    }
                    DiagFormat::Json => json.push(serde_json::json!({
                        "file": f.display().to_string(),
                        "valid": !report.has_errors(),
                        "diagnostics": report.to_json(),
                    })),
                    DiagFormat::Github => {
                        print!(
                            "{}",
                            super::annotations::github(&report, &f.display().to_string())
                        )
                    }
                    DiagFormat::Sarif => sarif_reports.push((report, f.display().to_string())),
                }
            }
            Err(e) => {
                usage = true;
                match args.format {
                    DiagFormat::Human => eprintln!("error: cannot read {}: {e}", f.display()),
                    DiagFormat::Json => json.push(serde_json::json!({
                        "file": f.display().to_string(),
                        "valid": false,
                        "error": e.to_string(),
                        "diagnostics": [],
                    })),
                    DiagFormat::Github => println!(
                        "::error file={},title=stpipe::cannot read the file: {}",
                        f.display(),
                        e.to_string().replace('\n', "%0A")
                    ),
                    DiagFormat::Sarif => unreadable.push((f.display().to_string(), e.to_string())),
                }
            }
        }
    }
    if args.format == DiagFormat::Json {
        let doc = serde_json::json!({ "files": json });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    if args.format == DiagFormat::Sarif {
        let doc = super::annotations::sarif(&sarif_reports, &unreadable);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    if usage {
        ExitCode::from(2)
    } else if invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
