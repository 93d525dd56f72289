//! Where a model named in a pipeline lives on disk.
//!
//! A model is named either by a path (`./my-model`, `/abs/dir`, `~/m`) or by a
//! Hugging Face Hub id (`sentence-transformers/all-MiniLM-L6-v2`). Locating
//! never touches the network: it looks, in order, at
//!
//! 1. the spec as a path (relative paths are taken from the pipeline file's
//!    directory, `base_dir`);
//! 2. every directory of the model search path (`STPIPE_MODEL_PATH`, a
//!    `:`-separated list, or `--model-path` on the command line), as
//!    `DIR/org/name`, `DIR/org--name` and `DIR/name`;
//! 3. the standard Hugging Face cache (`HF_HUB_CACHE`, else
//!    `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`, else
//!    `~/.cache/huggingface/hub`), as `models--org--name/snapshots/REV`,
//!    where REV is read from `refs/main` (or the single snapshot present).
//!
//! Downloading a Hub id that is in none of these places is the runtime's job
//! (see `runtime::download`); the checker only locates.

use std::path::{Path, PathBuf};

/// Environment variable holding the model search path.
pub const MODEL_PATH_ENV: &str = "STPIPE_MODEL_PATH";

/// Where to look for models, resolved once from the environment and flags.
#[derive(Debug, Clone, Default)]
pub struct ModelSearch {
    /// Directories searched for hub ids, in order.
    pub paths: Vec<PathBuf>,
    /// The Hugging Face hub cache directory (`.../huggingface/hub`).
    pub hf_cache: Option<PathBuf>,
}

/// How a model spec was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The spec named a directory directly.
    Path,
    /// Found in a directory of the model search path.
    SearchPath,
    /// Found as a snapshot in the Hugging Face cache.
    HfCache,
}

/// A model directory on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub dir: PathBuf,
    pub origin: Origin,
}

/// A model spec that could not be found locally.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("model `{spec}` was not found locally")]
#[diagnostic(code(stpipe::model_not_found), help("{hint}"))]
pub struct NotFound {
    pub spec: String,
    /// Every place that was looked at, in order.
    pub tried: Vec<PathBuf>,
    pub hint: String,
}

impl ModelSearch {
    /// The search configuration from the environment: `STPIPE_MODEL_PATH`
    /// and the Hugging Face cache variables.
    pub fn from_env() -> Self {
        let paths = std::env::var_os(MODEL_PATH_ENV)
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        ModelSearch {
            paths,
            hf_cache: hf_cache_dir(),
        }
    }

    /// Put `extra` directories (from `--model-path`) before the others.
    pub fn with_paths_first(mut self, extra: &[PathBuf]) -> Self {
        let mut paths = extra.to_vec();
        paths.append(&mut self.paths);
        self.paths = paths;
        self
    }

    /// Find `spec` on disk without any network access.
    pub fn locate(&self, spec: &str, base_dir: &Path) -> Result<Located, NotFound> {
        let mut tried = Vec::new();
        let as_path = expand_home(spec);
        let direct = if as_path.is_absolute() {
            as_path.clone()
        } else {
            base_dir.join(&as_path)
        };
        tried.push(direct.clone());
        if direct.is_dir() {
            return Ok(Located {
                dir: direct,
                origin: Origin::Path,
            });
        }
        let hub_like = is_hub_id(spec);
        if hub_like {
            let (org, name) = match spec.split_once('/') {
                Some((o, n)) => (Some(o), n),
                None => (None, spec),
            };
            for root in &self.paths {
                let mut candidates = vec![root.join(spec)];
                if let Some(org) = org {
                    candidates.push(root.join(format!("{org}--{name}")));
                }
                candidates.push(root.join(name));
                for c in candidates {
                    if !tried.contains(&c) {
                        tried.push(c.clone());
                    }
                    if c.is_dir() {
                        return Ok(Located {
                            dir: c,
                            origin: Origin::SearchPath,
                        });
                    }
                }
            }
            if let Some(cache) = &self.hf_cache {
                let repo_dir = cache.join(format!("models--{}", spec.replace('/', "--")));
                tried.push(repo_dir.clone());
                if let Some(snap) = cached_snapshot(&repo_dir) {
                    return Ok(Located {
                        dir: snap,
                        origin: Origin::HfCache,
                    });
                }
            }
        }
        let hint = if hub_like {
            format!(
                "put the model in a directory of the model search path \
                 ({MODEL_PATH_ENV} or --model-path), in the Hugging Face cache, \
                 or run once with network access so that it can be downloaded"
            )
        } else {
            "give the path of a sentence-transformers model directory \
             (relative paths start at the pipeline file's directory)"
                .to_string()
        };
        Err(NotFound {
            spec: spec.to_string(),
            tried,
            hint,
        })
    }
}

/// Whether `spec` has the shape of a Hub id (`name` or `org/name`, no
/// path-like prefix).
pub fn is_hub_id(spec: &str) -> bool {
    if spec.is_empty()
        || spec.starts_with('.')
        || spec.starts_with('/')
        || spec.starts_with('~')
        || spec.contains('\\')
    {
        return false;
    }
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// The Hugging Face hub cache directory, following the same variables as
/// `huggingface_hub`.
pub fn hf_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| {
            var("XDG_CACHE_HOME")
                .or_else(|| var("HOME").map(|h| h.join(".cache")))
                .map(|c| c.join("huggingface").join("hub"))
        })
}

/// The snapshot directory of a cached repository: the revision named by
/// `refs/main`, else the only snapshot there is.
pub fn cached_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    if dirs.len() == 1 {
        dirs.pop()
    } else {
        None
    }
}

fn expand_home(spec: &str) -> PathBuf {
    if let Some(rest) = spec.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_id_shapes() {
        assert!(is_hub_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(is_hub_id("bert-base-uncased"));
        assert!(!is_hub_id("./model"));
        assert!(!is_hub_id("/abs/model"));
        assert!(!is_hub_id("a/b/c"));
        assert!(!is_hub_id(""));
    }

    #[test]
    fn finds_direct_search_path_and_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("pipes");
        std::fs::create_dir_all(base.join("local-model")).unwrap();
        let search_root = tmp.path().join("models");
        std::fs::create_dir_all(search_root.join("all-MiniLM-L6-v2")).unwrap();
        let cache = tmp.path().join("hub");
        let repo = cache.join("models--org--cached");
        std::fs::create_dir_all(repo.join("snapshots").join("abc123")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        let search = ModelSearch {
            paths: vec![search_root.clone()],
            hf_cache: Some(cache.clone()),
        };

        let l = search.locate("local-model", &base).unwrap();
        assert_eq!(l.origin, Origin::Path);
        let l = search
            .locate("sentence-transformers/all-MiniLM-L6-v2", &base)
            .unwrap();
        assert_eq!(l.origin, Origin::SearchPath);
        assert_eq!(l.dir, search_root.join("all-MiniLM-L6-v2"));
        let l = search.locate("org/cached", &base).unwrap();
        assert_eq!(l.origin, Origin::HfCache);
        assert_eq!(l.dir, repo.join("snapshots").join("abc123"));
        let err = search.locate("org/missing", &base).unwrap_err();
        assert!(err.tried.len() >= 4, "{:?}", err.tried);
    }
}
