//! Writing the legacy sentence-transformers layout, atomically, and only
//! where it is safe.
//!
//! A save writes the whole model into a hidden directory next to the
//! target, syncs it, and renames it into place. A model stpipe saved
//! before at the target is swapped with the new one in one atomic step
//! (`renameat2(RENAME_EXCHANGE)` on Linux) and removed last, so a crash at
//! any moment leaves either the old model or the new one under the
//! target's name. Where the swap is not available, the old model is
//! renamed away first: a crash between the two renames leaves it under its
//! hidden name, which the next save puts back. Leftovers of interrupted
//! saves are removed by the next save of the same target. Every change
//! goes through [`crate::fsio`].
//!
//! stpipe never replaces what it did not write: the target must be absent,
//! an empty directory, or a model stpipe saved ([`is_stpipe_model`]);
//! `stpipe check` says so before anything runs, and [`save_dir`] refuses
//! again at run time.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::fsio;
use crate::runtime::encoder::SentenceEncoder;
use crate::runtime::error::{write_json, Error, Result};

/// The marker file of a model stpipe saved.
pub const MARKER: &str = "stpipe_model.json";

/// Whether `dir` holds a model stpipe saved: its marker, or (models saved
/// before the marker existed) stpipe's version in
/// `config_sentence_transformers.json`.
pub fn is_stpipe_model(dir: &Path) -> bool {
    if dir.join(MARKER).is_file() {
        return true;
    }
    std::fs::read(dir.join("config_sentence_transformers.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["__version__"].get("stpipe").is_some())
}

/// What is at a save target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing: the save creates it.
    Absent,
    /// An empty directory.
    Empty,
    /// A model stpipe saved: the save replaces it.
    StpipeModel,
    /// A file, or a directory stpipe did not write: never replaced.
    Foreign,
}

/// What is at `target`.
pub fn target_kind(target: &Path) -> Target {
    match std::fs::symlink_metadata(target) {
        Err(_) => Target::Absent,
        Ok(m) if m.is_dir() => {
            let empty = std::fs::read_dir(target).is_ok_and(|mut d| d.next().is_none());
            if empty {
                Target::Empty
            } else if is_stpipe_model(target) {
                Target::StpipeModel
            } else {
                Target::Foreign
            }
        }
        Ok(_) => Target::Foreign,
    }
}

/// Save `enc` to `target` (see the module documentation).
pub fn save_dir(enc: &SentenceEncoder, target: &Path) -> Result<()> {
    save_dir_with(enc, target, &[])
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// The target's name and its parent directory.
fn split(target: &Path) -> Result<(String, PathBuf)> {
    let name = target
        .file_name()
        .ok_or_else(|| {
            Error::Msg(format!(
                "cannot save to {}: no directory name",
                target.display()
            ))
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((name, parent))
}

/// Remove what interrupted saves of `target` left next to it; an old model
/// whose replacement never arrived is put back.
fn clean_leftovers(target: &Path, name: &str, parent: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    let (tmp, old) = (
        format!(".{name}.stpipe-tmp-"),
        format!(".{name}.stpipe-old-"),
    );
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if file.starts_with(&tmp) {
            fsio::remove_dir_all(&path).map_err(io(&path))?;
        } else if file.starts_with(&old) {
            if target.exists() {
                fsio::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                fsio::rename(&path, target).map_err(io(target))?;
            }
        }
    }
    Ok(())
}

/// Remove what interrupted saves of `target` left next to it.
pub fn clean_leftovers_of(target: &Path) -> Result<()> {
    let (name, parent) = split(target)?;
    clean_leftovers(target, &name, &parent)
}

/// [`save_dir`], with `extra` files (name, content) written into the
/// model's root before it replaces `target`, so that they appear with it.
pub fn save_dir_with(
    enc: &SentenceEncoder,
    target: &Path,
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    let (name, parent) = split(target)?;
    fsio::create_dir_all(&parent).map_err(io(&parent))?;
    clean_leftovers(target, &name, &parent)?;
    let kind = target_kind(target);
    if kind == Target::Foreign {
        return Err(Error::Msg(format!(
            "{} exists and is not a model stpipe saved: stpipe does not replace it",
            target.display()
        )));
    }
    let stamp = std::process::id();
    let tmp = parent.join(format!(".{name}.stpipe-tmp-{stamp}"));
    fsio::remove_dir_all(&tmp).map_err(io(&tmp))?;
    fsio::create_dir(&tmp).map_err(io(&tmp))?;
    let written = write_into(enc, &tmp).and_then(|()| {
        for (file, bytes) in extra {
            let p = tmp.join(file);
            fsio::write(&p, bytes).map_err(io(&p))?;
        }
        Ok(())
    });
    if let Err(e) = written {
        let _ = fsio::remove_dir_all(&tmp);
        return Err(e);
    }
    fsio::sync_dir(&tmp);
    match kind {
        Target::StpipeModel => {
            if fsio::exchange(&tmp, target).map_err(io(target))? {
                // `tmp` now holds the old model (a crash before its removal
                // leaves a `stpipe-tmp` the next save removes).
                fsio::sync_dir(&parent);
                fsio::remove_dir_all(&tmp).map_err(io(&tmp))?;
            } else {
                let old = parent.join(format!(".{name}.stpipe-old-{stamp}"));
                fsio::rename(target, &old).map_err(io(target))?;
                fsio::rename(&tmp, target).map_err(io(target))?;
                fsio::sync_dir(&parent);
                fsio::remove_dir_all(&old).map_err(io(&old))?;
            }
        }
        Target::Empty => {
            // rename(2) replaces an empty directory.
            fsio::rename(&tmp, target).map_err(io(target))?;
        }
        _ => fsio::rename(&tmp, target).map_err(io(target))?,
    }
    fsio::sync_dir(&parent);
    Ok(())
}

/// Write every file of the model into the existing directory `dir`.
pub fn write_into(enc: &SentenceEncoder, dir: &Path) -> Result<()> {
    let mut entries = Vec::new();
    for (i, m) in enc.modules().iter().enumerate() {
        let path = if i == 0 && m.type_name() == "Transformer" {
            String::new()
        } else {
            format!("{i}_{}", m.type_name())
        };
        let mdir = dir.join(&path);
        if !path.is_empty() {
            fsio::create_dir_all(&mdir).map_err(|e| Error::io(&mdir, e))?;
        }
        m.save(&mdir)?;
        entries.push(json!({
            "idx": i,
            "name": i.to_string(),
            "path": path,
            "type": m.st_type(),
        }));
    }
    write_json(&dir.join("modules.json"), &entries)?;
    let t = enc.transformer();
    let prompts: serde_json::Map<String, serde_json::Value> = t
        .prompts
        .iter()
        .map(|(n, p)| (n.clone(), json!(p)))
        .collect();
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &json!({
            "__version__": {
                "sentence_transformers": "3.0.1",
                "transformers": "4.41.2",
                "pytorch": "2.3.0",
                "stpipe": env!("CARGO_PKG_VERSION"),
            },
            "prompts": prompts,
            "default_prompt_name": t.default_prompt_name,
            "similarity_fn_name": "cosine",
        }),
    )
}
