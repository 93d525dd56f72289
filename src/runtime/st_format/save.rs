//! Writing the legacy sentence-transformers layout, atomically.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::runtime::encoder::SentenceEncoder;
use crate::runtime::error::{write_json, Error, Result};

/// Save `enc` to `target`: everything is written into a temporary directory
/// next to it, which then replaces `target` (an existing one is renamed away
/// first and deleted last), so a reader never sees a half-written model.
pub fn save_dir(enc: &SentenceEncoder, target: &Path) -> Result<()> {
    save_dir_with(enc, target, &[])
}

/// [`save_dir`], with `extra` files (name, content) written into the
/// model's root before it replaces `target`, so that they appear with it.
pub fn save_dir_with(
    enc: &SentenceEncoder,
    target: &Path,
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
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
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".{name}.stpipe-tmp-{stamp}"));
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let written = write_into(enc, &tmp).and_then(|()| {
        for (name, bytes) in extra {
            let p = tmp.join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if target.exists() {
        let old = parent.join(format!(".{name}.stpipe-old-{stamp}"));
        std::fs::rename(target, &old).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            Error::io(target, e)
        })?;
        if let Err(e) = std::fs::rename(&tmp, target) {
            let _ = std::fs::rename(&old, target);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::io(target, e));
        }
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, target).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            Error::io(target, e)
        })?;
    }
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
            std::fs::create_dir_all(&mdir).map_err(|e| Error::io(&mdir, e))?;
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
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &json!({
            "__version__": {
                "sentence_transformers": "3.0.1",
                "transformers": "4.41.2",
                "pytorch": "2.3.0",
                "stpipe": env!("CARGO_PKG_VERSION"),
            },
            "prompts": {},
            "default_prompt_name": null,
            "similarity_fn_name": "cosine",
        }),
    )
}
