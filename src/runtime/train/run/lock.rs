//! The run directory's lock, and the leftovers of an interrupted run.

use std::path::Path;

use super::io_err;
use crate::runtime::train::error::{Result, RunError};

/// An advisory lock on a run directory, held for the whole run: a second
/// run on the same directory fails at once instead of mixing checkpoints.
pub(super) struct RunDirLock {
    _file: std::fs::File,
}

impl RunDirLock {
    pub(super) fn acquire(dir: &Path) -> Result<Self> {
        use std::io::{Read, Seek, Write};
        let path = dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(RunError::Locked {
                    dir: dir.to_path_buf(),
                    holder: describe_holder(holder.trim()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(RunError::io(&path, e)),
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{} {now}", std::process::id());
        let _ = file.sync_all();
        Ok(RunDirLock { _file: file })
    }
}

/// "pid P, started N s ago" from a lock file's `P T`.
fn describe_holder(text: &str) -> String {
    let mut it = text.split_whitespace();
    let (Some(pid), Some(t)) = (it.next(), it.next().and_then(|t| t.parse::<u64>().ok())) else {
        return "another stpipe run holds its lock".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(t);
    format!(
        "stpipe run with PID {pid}, started {} s ago (at {t} s since the Unix epoch)",
        now.saturating_sub(t)
    )
}

/// Remove the temporary files an interrupted run left in the run
/// directory itself (`*.tmp` of its atomic writes).
pub(super) fn clean_run_dir(dir: &Path) -> Result<()> {
    for d in [dir.to_path_buf(), dir.join("evaluations")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() && p.extension().is_some_and(|x| x == "tmp") {
                crate::fsio::remove_file(&p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}
