//! Finding a model on disk, and downloading a Hub id into the standard
//! Hugging Face cache when it is not there and the machine is online.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::hub::{is_hub_id, ModelSearch};

/// Files worth downloading from a model repository.
fn wanted(file: &str) -> bool {
    let top = !file.contains('/') || is_module_dir_file(file);
    top && (file.ends_with(".json")
        || file.ends_with(".safetensors")
        || file == "vocab.txt"
        || file.ends_with(".model")
        || file == "merges.txt")
}

fn is_module_dir_file(file: &str) -> bool {
    // `1_Pooling/config.json`, `2_Dense/model.safetensors`, ...
    let mut parts = file.split('/');
    let first = parts.next().unwrap_or("");
    parts.clone().count() == 1
        && first
            .split_once('_')
            .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
}

/// The directory of `spec`: a local path, a search-path entry, a cached
/// snapshot, or (for a Hub id, when online) a fresh download.
pub fn resolve(spec: &str, search: &ModelSearch, base_dir: &Path) -> Result<PathBuf> {
    let not_found = match search.locate(spec, base_dir) {
        Ok(l) => return Ok(l.dir),
        Err(nf) => nf,
    };
    let tried: Vec<String> = not_found
        .tried
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let tried = tried.join(", ");
    if !is_hub_id(spec) {
        return Err(Error::ModelUnavailable {
            spec: spec.to_string(),
            msg: format!("no such directory (looked at: {tried})"),
        });
    }
    let offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "STPIPE_OFFLINE"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")));
    if offline {
        return Err(Error::ModelUnavailable {
            spec: spec.to_string(),
            msg: format!("not found locally (looked at: {tried}) and offline mode is on"),
        });
    }
    download_watched(spec, search.hf_cache.as_deref()).map_err(|msg| Error::ModelUnavailable {
        spec: spec.to_string(),
        msg: format!("not found locally (looked at: {tried}); download failed: {msg}"),
    })
}

/// Seconds without a byte arriving after which a download is given up
/// (`STPIPE_DOWNLOAD_STALL_SECS` overrides the 60 s).
fn stall_limit() -> std::time::Duration {
    let secs = std::env::var("STPIPE_DOWNLOAD_STALL_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60);
    std::time::Duration::from_secs(secs.max(1))
}

/// Bytes under a directory (what a download has written so far).
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// [`download`] on a worker thread, watched: when nothing arrives for
/// [`stall_limit`] (a proxy that accepts and never answers, a dead link),
/// the download is given up with a message, instead of hanging for ever.
fn download_watched(spec: &str, cache: Option<&Path>) -> std::result::Result<PathBuf, String> {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let cache_root = cache
        .map(Path::to_path_buf)
        .unwrap_or_else(|| hf_hub::Cache::from_env().path().clone());
    let repo_dir = cache_root.join(format!("models--{}", spec.replace('/', "--")));
    let (tx, rx) = mpsc::channel();
    let (s, c) = (spec.to_string(), cache.map(Path::to_path_buf));
    std::thread::spawn(move || {
        let _ = tx.send(download(&s, c.as_deref()));
    });
    let limit = stall_limit();
    let (mut seen, mut since) = (bytes_under(&repo_dir), Instant::now());
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the download stopped without a result".into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = bytes_under(&repo_dir);
                if now != seen {
                    (seen, since) = (now, Instant::now());
                } else if since.elapsed() >= limit {
                    return Err(format!(
                        "no data arrived for {} s (is the network or a proxy down? set HF_HUB_OFFLINE=1 to work offline)",
                        limit.as_secs()
                    ));
                }
            }
        }
    }
}

fn download(spec: &str, cache: Option<&Path>) -> std::result::Result<PathBuf, String> {
    let mut builder = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(true)
        .with_retries(3);
    if let Some(c) = cache {
        builder = builder.with_cache_dir(c.to_path_buf());
    }
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.model(spec.to_string());
    let info = repo
        .info()
        .map_err(|e| format!("cannot list the repository: {e}"))?;
    let files: Vec<String> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.clone())
        .filter(|f| wanted(f))
        .collect();
    let has_st = files
        .iter()
        .any(|f| f == "model.safetensors" || f == "model.safetensors.index.json");
    let mut dir: Option<PathBuf> = None;
    for f in &files {
        let p = repo.get(f).map_err(|e| format!("{f}: {e}"))?;
        if dir.is_none() && !f.contains('/') {
            dir = p.parent().map(Path::to_path_buf);
        }
    }
    if !has_st {
        // Older repositories only have PyTorch weights, whole or sharded
        // (`pytorch_model-00001-of-00002.bin`, listed by the index).
        let pickles = info
            .siblings
            .iter()
            .map(|s| s.rfilename.as_str())
            .filter(|f| {
                *f == "pytorch_model.bin"
                    || (f.starts_with("pytorch_model-") && f.ends_with(".bin"))
            });
        for f in pickles {
            let p = repo.get(f).map_err(|e| format!("{f}: {e}"))?;
            dir = dir.or_else(|| p.parent().map(Path::to_path_buf));
        }
    }
    dir.ok_or_else(|| "the repository has no model files".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_model_files() {
        assert!(wanted("config.json"));
        assert!(wanted("model.safetensors"));
        assert!(wanted("1_Pooling/config.json"));
        assert!(wanted("2_Dense/model.safetensors"));
        assert!(!wanted("onnx/model.onnx"));
        assert!(!wanted("openvino/openvino_model.xml"));
        assert!(!wanted("README.md"));
    }
}
