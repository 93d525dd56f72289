//! Stable fingerprints: SHA-256 of a step's resolved configuration, its
//! inputs' fingerprints and the content of the files it reads.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hashes file contents once per plan.
#[derive(Debug, Default)]
pub struct FileHasher {
    cache: HashMap<PathBuf, String>,
}

impl FileHasher {
    /// SHA-256 of a file's content, read in chunks.
    pub fn file(&mut self, p: &Path) -> std::io::Result<String> {
        if let Some(h) = self.cache.get(p) {
            return Ok(h.clone());
        }
        let mut f = std::fs::File::open(p)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let h = hex(&hasher.finalize());
        self.cache.insert(p.to_path_buf(), h.clone());
        Ok(h)
    }

    /// Hash of every file under a directory (relative names and contents,
    /// in name order).
    pub fn dir(&mut self, d: &Path) -> std::io::Result<String> {
        let mut files = Vec::new();
        collect(d, d, &mut files, 0)?;
        files.sort();
        let mut hasher = Sha256::new();
        for rel in files {
            let h = self.file(&d.join(&rel))?;
            hasher.update(rel.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(h.as_bytes());
        }
        Ok(hex(&hasher.finalize()))
    }
}

fn collect(root: &Path, d: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    if depth > 8 {
        return Ok(());
    }
    for e in std::fs::read_dir(d)? {
        let e = e?;
        let p = e.path();
        let ty = e.file_type()?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if ty.is_dir() {
            collect(root, &p, out, depth + 1)?;
        } else if ty.is_file() || p.is_file() {
            if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    Ok(())
}

/// Fingerprint of a configuration and the fingerprints it depends on.
pub fn combine(kind: &str, config: &serde_json::Value, inputs: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(config.to_string().as_bytes());
    for i in inputs {
        h.update([0]);
        h.update(i.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Drop machine-specific absolute paths from a configuration; file content
/// hashes stand in for them.
pub fn strip_paths(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            o.remove("dir");
            o.remove("path");
            o.remove("written");
            for x in o.values_mut() {
                strip_paths(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_paths),
        _ => {}
    }
}
