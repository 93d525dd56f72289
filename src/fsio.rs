//! Every file-system change a run makes (checkpoints, the metrics log,
//! recorded evaluations, saved models, the run directory's own files) goes
//! through here, for two reasons:
//!
//! * **Failpoints.** With `STPIPE_FAILPOINT=N` in the environment, the
//!   process dies at the N-th change, as a crash or `kill -9` would: a
//!   write is cut half way through its bytes, a rename or removal does not
//!   happen, and the process aborts without running any destructor. The
//!   failpoint test (`tests/failpoints.rs`) crashes a run at every change
//!   in turn and checks that resuming always ends with the same bytes, the
//!   way SQLite tests its recovery.
//! * **Messages.** A full disk is said as such (`disk_full`), rather than
//!   as a corrupt checkpoint or a missing weight file.
//!
//! Writes are synced before they count as done: a checkpoint or a model is
//! renamed into place only once its files are on disk.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a failpoint.
pub const FAILPOINT_ENV: &str = "STPIPE_FAILPOINT";

static CHANGES: AtomicU64 = AtomicU64::new(0);

fn limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| std::env::var(FAILPOINT_ENV).ok()?.trim().parse().ok())
}

/// The number of file-system changes made so far by this process.
pub fn changes() -> u64 {
    CHANGES.load(Ordering::SeqCst)
}

/// Count one change; `true` when it is the armed failpoint.
fn hit() -> bool {
    let n = CHANGES.fetch_add(1, Ordering::SeqCst) + 1;
    limit() == Some(n)
}

fn die(what: &str, path: &Path) -> ! {
    let _ = writeln!(
        std::io::stderr(),
        "stpipe: {FAILPOINT_ENV}={}: crashing at {what} {}",
        changes(),
        path.display()
    );
    std::process::abort()
}

/// Whether an I/O error means the disk (or the quota) is full.
pub fn disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28) | Some(122))
        || e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// Write `bytes` to a new or truncated file and sync it.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let crash = hit();
    let mut f = std::fs::File::create(path)?;
    if crash {
        let _ = f.write_all(&bytes[..bytes.len() / 2]);
        let _ = f.sync_all();
        die("write", path);
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write a new or truncated file from what `fill` writes, through a
/// buffer, and sync it: a file too large to hold in memory twice (a
/// checkpoint's optimizer state). `size` is the number of bytes `fill`
/// writes; at the armed failpoint the file is cut after half of them.
pub fn write_with(
    path: &Path,
    size: u64,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let crash = hit();
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    if crash {
        let mut cut = Cut {
            inner: &mut w,
            left: size / 2,
        };
        let _ = fill(&mut cut);
        let _ = w.flush();
        let _ = w.get_ref().sync_all();
        die("write", path);
    }
    fill(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

/// A writer that passes on its first `left` bytes and drops the rest (a
/// write cut short by a crash).
struct Cut<'a, W: Write> {
    inner: &'a mut W,
    left: u64,
}

impl<W: Write> Write for Cut<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.inner.write_all(&buf[..n])?;
        self.left -= n as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Append `bytes` to an open file (one call, so a line is not torn by
/// the process itself).
pub fn append(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if hit() {
        let _ = file.write_all(&bytes[..bytes.len() / 2]);
        die("append to", path);
    }
    file.write_all(bytes)
}

/// Create a directory and its parents.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if hit() {
        die("create", path);
    }
    std::fs::create_dir_all(path)
}

/// Create one directory (its parent must exist).
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    if hit() {
        die("create", path);
    }
    std::fs::create_dir(path)
}

/// Rename `from` to `to` (atomic on one file system).
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    if hit() {
        die("rename", from);
    }
    std::fs::rename(from, to)
}

/// Swap `a` and `b` (both must exist) in one atomic step, so that `b`'s
/// name never stops naming a complete directory. `Ok(false)` where the
/// system or the file system cannot (the caller then renames twice).
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        let (ca, cb) = (c(a)?, c(b)?);
        if hit() {
            die("exchange", b);
        }
        // SAFETY: two valid NUL-terminated paths; renameat2 reads them only.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EXDEV) => Ok(false),
            _ => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Remove a directory tree; an absent one is fine.
pub fn remove_dir_all(path: &Path) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if hit() {
        die("remove", path);
    }
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove a file; an absent one is fine.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if hit() {
        die("remove", path);
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Sync a directory, so that the renames in it are durable.
pub fn sync_dir(path: &Path) {
    if let Ok(d) = std::fs::File::open(path) {
        let _ = d.sync_all();
    }
}

/// Write `path` atomically: `path.tmp` is written and synced, then renamed
/// over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    write(&tmp, bytes)?;
    rename(&tmp, path)
}
