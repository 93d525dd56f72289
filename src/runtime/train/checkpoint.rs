//! Checkpoints: everything a stage needs to continue exactly where it
//! stopped, written atomically.
//!
//! Layout of one checkpoint, `CHECKPOINTS/step-00000500/`:
//!
//! * `state.json`: the trainer's progress (step, data positions, best
//!   metric...), opaque here;
//! * `weights.safetensors`: every trainable tensor by name (model and loss
//!   heads);
//! * `optimizer.safetensors`: the AdamW moments, `m.NAME` and `v.NAME`.
//!
//! A checkpoint is written into `step-N.tmp`, synced, then renamed to
//! `step-N`: a directory with the final name is always complete, whatever
//! moment the process was killed at. Rewriting an existing `step-N` never
//! removes it before its replacement is complete: it is renamed to
//! `step-N.old`, the new one renamed into place, and only then the old one
//! removed; a crash between the two renames leaves `step-N.old`, which
//! counts as `step-N` until a save cleans up. Leftover `.tmp` directories
//! are removed by the next save. Only the newest `keep` checkpoints are
//! kept, and only after the new one is complete. Every change goes through
//! [`crate::fsio`] (failpoints, full-disk messages).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::optim::Moments;
pub(crate) use crate::runtime::safetensors_out::Source;
use crate::runtime::safetensors_out::WriteError;

/// Errors of checkpoint files.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    #[diagnostic(code(stpipe::checkpoint::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {message}")]
    #[diagnostic(
        code(stpipe::checkpoint::corrupt),
        help("delete this checkpoint directory to resume from the one before it")
    )]
    Corrupt { path: PathBuf, message: String },
    #[error("the disk is full: cannot write {path}")]
    #[diagnostic(
        code(stpipe::disk_full),
        help("free some space and run the same command again: the checkpoints written so far are intact, and the run resumes from the newest")
    )]
    DiskFull { path: PathBuf },
}

type Result<T> = std::result::Result<T, CheckpointError>;

/// What a checkpoint holds.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Optimizer steps taken when it was written.
    pub step: u64,
    /// The trainer's own progress record.
    pub state: serde_json::Value,
    /// Trainable tensors by name.
    pub weights: HashMap<String, Tensor>,
    /// AdamW moments by parameter name.
    pub moments: HashMap<String, Moments>,
}

/// What a checkpoint is written from, borrowed (from the optimizer): the
/// files are written from the tensors and moment vectors themselves,
/// without a copy in memory.
pub(crate) struct Snapshot<'a> {
    pub step: u64,
    pub state: serde_json::Value,
    /// Trainable tensors by name.
    pub weights: Vec<(&'a str, Source<'a>)>,
    /// AdamW moments by parameter name.
    pub moments: Vec<(&'a str, &'a Moments)>,
}

#[cfg(test)]
impl Checkpoint {
    /// This checkpoint, to be written again.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            step: self.step,
            state: self.state.clone(),
            weights: self
                .weights
                .iter()
                .map(|(n, t)| (n.as_str(), Source::Tensor(t)))
                .collect(),
            moments: self.moments.iter().map(|(n, m)| (n.as_str(), m)).collect(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| {
        if crate::fsio::disk_full(&source) {
            CheckpointError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn corrupt(path: &Path, message: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The step of a checkpoint directory name: `step-N`, or `step-N.old`
/// (complete, left by a crash while `step-N` was being replaced).
fn parse_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("step-")?;
    match rest.strip_suffix(".old") {
        Some(n) => Some((n.parse().ok()?, true)),
        None => Some((rest.parse().ok()?, false)),
    }
}

/// The completed checkpoints in `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut plain: Vec<(u64, PathBuf)> = Vec::new();
    let mut old: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(plain),
        Err(e) => return Err(io(root)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(root))?;
        let name = entry.file_name();
        let Some((step, is_old)) = name.to_str().and_then(parse_name) else {
            continue;
        };
        if entry.path().is_dir() {
            if is_old { &mut old } else { &mut plain }.push((step, entry.path()));
        }
    }
    for (step, p) in old {
        if !plain.iter().any(|(s, _)| *s == step) {
            plain.push((step, p));
        }
    }
    plain.sort();
    Ok(plain)
}

/// Write `tensors` as a safetensors file, straight from where they lie.
fn save_tensors(path: &Path, tensors: &[(&str, Source)]) -> Result<()> {
    crate::runtime::safetensors_out::write(path, tensors, None).map_err(|e| match e {
        WriteError::Io(e) => io(path)(e),
        WriteError::Format(m) => corrupt(path, m),
    })
}

/// Remove what interrupted saves left in `root`: `.tmp` directories, and
/// `.old` ones whose replacement is complete (an `.old` without one is
/// renamed back: it is the only copy of its step).
fn clean_leftovers(root: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(".tmp") {
            crate::fsio::remove_dir_all(&path).map_err(io(&path))?;
        } else if let Some((step, true)) = parse_name(&name) {
            let plain = root.join(step_dir_name(step));
            if plain.is_dir() {
                crate::fsio::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                crate::fsio::rename(&path, &plain).map_err(io(&plain))?;
            }
        }
    }
    Ok(())
}

/// Write `ckpt` under `root` atomically, then keep only the newest `keep`.
pub(crate) fn save(root: &Path, ckpt: &Snapshot, keep: usize) -> Result<PathBuf> {
    use crate::fsio;
    fsio::create_dir_all(root).map_err(io(root))?;
    clean_leftovers(root)?;
    let final_dir = root.join(step_dir_name(ckpt.step));
    let tmp = root.join(format!("{}.tmp", step_dir_name(ckpt.step)));
    fsio::create_dir(&tmp).map_err(io(&tmp))?;

    let state = serde_json::json!({ "step": ckpt.step, "trainer": ckpt.state });
    let state_bytes = serde_json::to_vec_pretty(&state).map_err(|e| corrupt(&tmp, e))?;
    let state_path = tmp.join("state.json");
    fsio::write(&state_path, &state_bytes).map_err(io(&state_path))?;
    save_tensors(&tmp.join("weights.safetensors"), &ckpt.weights)?;
    let names: Vec<(String, String)> = ckpt
        .moments
        .iter()
        .map(|(name, _)| (format!("m.{name}"), format!("v.{name}")))
        .collect();
    let mut opt = Vec::with_capacity(2 * names.len());
    for ((m_name, v_name), (_, m)) in names.iter().zip(&ckpt.moments) {
        opt.push((m_name.as_str(), Source::F32(&m.m)));
        opt.push((v_name.as_str(), Source::F32(&m.v)));
    }
    save_tensors(&tmp.join("optimizer.safetensors"), &opt)?;
    fsio::sync_dir(&tmp);

    if final_dir.exists() {
        // The complete old one stays until the new one is in place.
        let old = root.join(format!("{}.old", step_dir_name(ckpt.step)));
        fsio::rename(&final_dir, &old).map_err(io(&old))?;
        fsio::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
        fsio::sync_dir(root);
        fsio::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        fsio::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    }
    fsio::sync_dir(root);
    let all = list(root)?;
    if all.len() > keep.max(1) {
        for (_, old) in &all[..all.len() - keep.max(1)] {
            fsio::remove_dir_all(old).map_err(io(old))?;
        }
    }
    Ok(final_dir)
}

/// Read one checkpoint directory.
pub fn read(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let state_path = dir.join("state.json");
    let bytes = std::fs::read(&state_path).map_err(io(&state_path))?;
    let state: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&state_path, e))?;
    let step = state["step"]
        .as_u64()
        .ok_or_else(|| corrupt(&state_path, "no `step` number"))?;
    let load = |name: &str| {
        let p = dir.join(name);
        candle_core::safetensors::load(&p, device).map_err(|e| corrupt(&p, e))
    };
    let weights = load("weights.safetensors")?;
    let opt_path = dir.join("optimizer.safetensors");
    let opt = load("optimizer.safetensors")?;
    let mut moments = HashMap::new();
    for (key, m) in &opt {
        let Some(name) = key.strip_prefix("m.") else {
            continue;
        };
        let v = opt
            .get(&format!("v.{name}"))
            .ok_or_else(|| corrupt(&opt_path, format!("`m.{name}` has no `v.{name}`")))?;
        let vec = |t: &Tensor| t.to_vec1::<f32>().map_err(|e| corrupt(&opt_path, e));
        moments.insert(
            name.to_string(),
            Moments {
                m: vec(m)?,
                v: vec(v)?,
            },
        );
    }
    Ok(Checkpoint {
        step,
        state: state["trainer"].clone(),
        weights,
        moments,
    })
}

/// The step and trainer state of the newest complete checkpoint under
/// `root`, without its tensors (for deciding whether a stage is done).
pub fn latest_state(root: &Path) -> Option<(u64, serde_json::Value)> {
    list(root).ok()?.into_iter().rev().find_map(|(_, dir)| {
        let bytes = std::fs::read(dir.join("state.json")).ok()?;
        let state: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some((state["step"].as_u64()?, state["trainer"].clone()))
    })
}

/// The newest readable checkpoint under `root`, if any. A damaged newer
/// one (a file that does not parse) is passed over and named in the
/// returned notes; the one before it is used.
pub fn latest_with_notes(
    root: &Path,
    device: &Device,
) -> Result<(Option<Checkpoint>, Vec<String>)> {
    let mut notes = Vec::new();
    for (_, dir) in list(root)?.into_iter().rev() {
        match read(&dir, device) {
            Ok(c) => return Ok((Some(c), notes)),
            Err(e) => notes.push(format!(
                "checkpoint {} is damaged ({e}); falling back to the one before it",
                dir.display()
            )),
        }
    }
    Ok((None, notes))
}

/// The newest readable checkpoint under `root`, if any.
pub fn latest(root: &Path, device: &Device) -> Result<Option<Checkpoint>> {
    Ok(latest_with_notes(root, device)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ckpt(step: u64) -> Checkpoint {
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0, step as f32], (2, 2), &Device::Cpu).unwrap();
        Checkpoint {
            step,
            state: serde_json::json!({ "epoch": 0, "position": step }),
            weights: HashMap::from([("encoder.weight".to_string(), w)]),
            moments: HashMap::from([(
                "encoder.weight".to_string(),
                Moments {
                    m: vec![0.1, 0.2, 0.3, 0.4],
                    v: vec![0.01, 0.02, 0.03, 0.04],
                },
            )]),
        }
    }

    #[test]
    fn round_trip_keep_and_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("checkpoints");
        assert!(latest(&root, &Device::Cpu).unwrap().is_none());
        for s in [5, 10, 15] {
            save(&root, &ckpt(s).snapshot(), 2).unwrap();
        }
        let steps: Vec<u64> = list(&root).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![10, 15]);
        let c = latest(&root, &Device::Cpu).unwrap().unwrap();
        assert_eq!(c.step, 15);
        assert_eq!(c.state["position"], 15);
        let w = c.weights["encoder.weight"].to_vec2::<f32>().unwrap();
        assert_eq!(w, vec![vec![1.0, 2.0], vec![3.0, 15.0]]);
        assert_eq!(
            c.moments["encoder.weight"],
            ckpt(15).moments["encoder.weight"]
        );
    }

    #[test]
    fn an_interrupted_save_is_invisible_and_cleaned_up() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        save(&root, &ckpt(5).snapshot(), 3).unwrap();
        // A save killed half way leaves only a .tmp directory.
        let half = root.join("step-00000010.tmp");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("state.json"), "{").unwrap();
        assert_eq!(latest(&root, &Device::Cpu).unwrap().unwrap().step, 5);
        save(&root, &ckpt(10).snapshot(), 3).unwrap();
        assert!(!half.exists());
        assert_eq!(latest(&root, &Device::Cpu).unwrap().unwrap().step, 10);
    }

    #[test]
    fn corrupt_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = save(tmp.path(), &ckpt(1).snapshot(), 1).unwrap();
        std::fs::write(dir.join("optimizer.safetensors"), b"garbage").unwrap();
        let err = read(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("optimizer.safetensors"), "{err}");
    }

    #[test]
    fn a_crash_between_the_renames_of_a_rewrite_keeps_the_old_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        save(&root, &ckpt(5).snapshot(), 3).unwrap();
        // Rewriting step 5 renames it to `.old` first; a crash before the
        // new one is renamed into place leaves only the `.old` copy and a
        // complete `.tmp`.
        let plain = root.join(step_dir_name(5));
        let old = root.join(format!("{}.old", step_dir_name(5)));
        std::fs::rename(&plain, &old).unwrap();
        std::fs::create_dir_all(root.join(format!("{}.tmp", step_dir_name(5)))).unwrap();
        assert_eq!(latest(&root, &Device::Cpu).unwrap().unwrap().step, 5);
        // The next save puts the only copy back under its name.
        save(&root, &ckpt(10).snapshot(), 3).unwrap();
        assert!(plain.is_dir() && !old.exists());
        let steps: Vec<u64> = list(&root).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![5, 10]);
    }

    #[test]
    fn a_damaged_newest_checkpoint_falls_back_to_the_one_before_and_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        save(&root, &ckpt(5).snapshot(), 3).unwrap();
        let newest = save(&root, &ckpt(10).snapshot(), 3).unwrap();
        // What the old rewrite left: the final name without its state.
        std::fs::remove_file(newest.join("state.json")).unwrap();
        let (c, notes) = latest_with_notes(&root, &Device::Cpu).unwrap();
        assert_eq!(c.unwrap().step, 5);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains(&newest.display().to_string()) && notes[0].contains("falling back"),
            "{notes:?}"
        );
        assert_eq!(latest_state(&root).unwrap().0, 5);
    }
}
