//! What `stpipe` promises about the files it touches (issue 8, items 1 to
//! 4, and a full disk): a `save` never destroys what is at its path, a
//! crash while a checkpoint is rewritten never breaks the run directory,
//! two runs never share a run directory, a signal checkpoints and a closed
//! pipe ends the process quietly, and a full disk loses nothing. Each test
//! is named after the item it covers.

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{saved_weights, stpipe_run, tiny_pipeline, tiny_workspace, tree};

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

use common::output_text as text;

/// Names an interrupted write leaves behind.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    tree_dirs(dir)
        .into_iter()
        .chain(tree(dir).into_iter().map(|(p, _)| p))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".tmp")
                || n.ends_with(".old")
                || n.contains("stpipe-tmp")
                || n.contains("stpipe-old")
        })
        .collect()
}

fn tree_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.push(e.path());
                todo.push(e.path());
            }
        }
    }
    out
}

/// The `step-N` checkpoint directories under a run directory, complete
/// ones only (with their state), oldest first.
fn complete_checkpoints(run_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = tree_dirs(run_dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("step-") && !n.contains('.') && p.join("state.json").is_file()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn item_1_a_save_never_destroys_what_is_at_its_path() {
    let ws = tiny_workspace(40);
    let dir = ws.path();
    std::fs::write(dir.join("notes.txt"), "my notes\n").unwrap();
    std::fs::create_dir_all(dir.join("home/docs")).unwrap();
    std::fs::write(dir.join("home/.profile"), "export A=1\n").unwrap();
    std::fs::write(dir.join("home/docs/a.txt"), "a\n").unwrap();
    let one = |to: &str| tiny_pipeline(to, "max_steps: 2");
    let cases = [
        (".", one("."), "unsafe-save"),
        ("the data's directory", one("data"), "unsafe-save"),
        ("a data file", one("data/pairs.tsv"), "unsafe-save"),
        ("the input model", one("tiny"), "unsafe-save"),
        ("an existing file", one("notes.txt"), "unsafe-save"),
        ("a home directory", one("home"), "unsafe-save"),
        ("inside the run directory", one("run/model"), "unsafe-save"),
        (
            "two saves to one path",
            one("out") + "save m to \"./out\"\n",
            "duplicate-save",
        ),
    ];
    for (what, src, code) in cases {
        std::fs::write(dir.join("p.stp"), &src).unwrap();
        let before = tree(dir);
        let o = Command::new(BIN)
            .arg("check")
            .arg(dir.join("p.stp"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{what}: check\n{}", text(&o));
        assert!(text(&o).contains(code), "{what}: no {code}\n{}", text(&o));
        let o = stpipe_run(&dir.join("p.stp"), &dir.join("run"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{what}: run\n{}", text(&o));
        assert!(text(&o).contains(code), "{what}: run\n{}", text(&o));
        assert!(tree(dir) == before, "{what}: files changed");
    }

    // Replacing a model stpipe saved: the old one stays whole until the
    // new one is complete, whatever moment the process dies at.
    std::fs::write(
        dir.join("p.stp"),
        tiny_pipeline("out", "seed: 7\n max_steps: 3"),
    )
    .unwrap();
    let o = stpipe_run(&dir.join("p.stp"), &dir.join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let old = saved_weights(&dir.join("out"));
    // Files get the usual permissions (the umask's), like any file the
    // test itself creates.
    std::fs::write(dir.join("probe"), "x").unwrap();
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(
        mode(&dir.join("out/model.safetensors")),
        mode(&dir.join("probe"))
    );
    let new_src = tiny_pipeline("out", "seed: 8\n max_steps: 3");
    let reference = tiny_workspace(40);
    std::fs::write(reference.path().join("p.stp"), &new_src).unwrap();
    let o = stpipe_run(
        &reference.path().join("p.stp"),
        &reference.path().join("run"),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let new = saved_weights(&reference.path().join("out"));
    assert!(old != new);
    std::fs::write(dir.join("p.stp"), &new_src).unwrap();
    let mut crashes = 0;
    for n in 1u64.. {
        // Start each attempt from the old model.
        let ws2 = tiny_workspace(40);
        let d2 = ws2.path();
        std::fs::write(
            d2.join("p.stp"),
            tiny_pipeline("out", "seed: 7\n max_steps: 3"),
        )
        .unwrap();
        assert!(stpipe_run(&d2.join("p.stp"), &d2.join("run"))
            .output()
            .unwrap()
            .status
            .success());
        std::fs::write(d2.join("p.stp"), &new_src).unwrap();
        let o = stpipe_run(&d2.join("p.stp"), &d2.join("run"))
            .env("STPIPE_FAILPOINT", n.to_string())
            .output()
            .unwrap();
        // The target names the old model or the new one; only where the
        // file system cannot swap directories may the old one be under
        // its hidden name for a moment.
        let now = if d2.join("out").exists() {
            saved_weights(&d2.join("out"))
        } else {
            let hidden = std::fs::read_dir(d2)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().contains(".out.stpipe-old-"))
                .unwrap_or_else(|| panic!("failpoint {n}: no model at all"));
            saved_weights(&hidden)
        };
        assert!(
            now == old || now == new,
            "failpoint {n}: a mixed or partial model"
        );
        if o.status.success() {
            assert!(now == new);
            break;
        }
        crashes += 1;
        let o = stpipe_run(&d2.join("p.stp"), &d2.join("run"))
            .output()
            .unwrap();
        assert!(o.status.success(), "failpoint {n}: {}", text(&o));
        assert!(saved_weights(&d2.join("out")) == new, "failpoint {n}");
        let left = leftovers(d2);
        assert!(left.is_empty(), "failpoint {n}: leftovers {left:?}");
        assert!(n < 1000);
    }
    eprintln!("replacing a saved model: {crashes} crash points, the target always whole");
    assert!(crashes > 5, "only {crashes} crash points");
}

#[test]
fn item_2_a_crash_while_a_checkpoint_is_rewritten_never_breaks_the_run_directory() {
    let train = "epochs: 2\n checkpoint: every 2 steps, keep 2\n seed: 3";
    let reference = tiny_workspace(40);
    std::fs::write(reference.path().join("p.stp"), tiny_pipeline("out", train)).unwrap();
    let r = reference.path();
    assert!(stpipe_run(&r.join("p.stp"), &r.join("run"))
        .output()
        .unwrap()
        .status
        .success());
    let want = saved_weights(&r.join("out"));

    // Crash the run at its n-th file-system change until two complete
    // checkpoints exist.
    for n in 1u64.. {
        let ws = tiny_workspace(40);
        let dir = ws.path();
        std::fs::write(dir.join("p.stp"), tiny_pipeline("out", train)).unwrap();
        let o = stpipe_run(&dir.join("p.stp"), &dir.join("run"))
            .env("STPIPE_FAILPOINT", n.to_string())
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "the run finished before two checkpoints"
        );
        let done = complete_checkpoints(&dir.join("run"));
        if done.len() < 2 {
            continue;
        }
        // What the old rewrite left when killed between its two steps: the
        // newest `step-N/` without its state beside a complete `.tmp`.
        let newest = done.last().unwrap();
        let tmp = newest.with_file_name(format!(
            "{}.tmp",
            newest.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&tmp).unwrap();
        for (p, bytes) in tree(newest) {
            std::fs::write(tmp.join(p.file_name().unwrap()), bytes).unwrap();
        }
        std::fs::remove_file(newest.join("state.json")).unwrap();
        let o = stpipe_run(&dir.join("p.stp"), &dir.join("run"))
            .output()
            .unwrap();
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(
            t.contains("is damaged") && t.contains("falling back"),
            "{t}"
        );
        assert!(saved_weights(&dir.join("out")) == want);
        let left = leftovers(dir);
        assert!(left.is_empty(), "leftovers {left:?}");
        return;
    }
}

/// A long run (about a thousand steps of the tiny model).
fn long_workspace() -> (tempfile::TempDir, PathBuf) {
    let ws = tiny_workspace(400);
    let file = ws.path().join("p.stp");
    std::fs::write(
        &file,
        tiny_pipeline(
            "out",
            "epochs: 20\n checkpoint: every 100000 steps\n seed: 5",
        ),
    )
    .unwrap();
    (ws, file)
}

/// Wait until the run directory's log has a training step.
fn wait_for_training(run_dir: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default();
        if log.contains("\"loss\"") {
            return;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the run ended before training: {s:?}");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no training");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A long run started in a fresh workspace and past its first training
/// step: the workspace, the pipeline, the run directory and the process
/// (its stderr piped, its stdout discarded).
fn training_run() -> (tempfile::TempDir, PathBuf, PathBuf, std::process::Child) {
    let (ws, file) = long_workspace();
    let run_dir = ws.path().join("run");
    let mut child = stpipe_run(&file, &run_dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_training(&run_dir, &mut child);
    (ws, file, run_dir, child)
}

#[test]
fn item_3_two_runs_never_share_a_run_directory() {
    let (_ws, file, run_dir, mut first) = training_run();
    let before = tree(&run_dir.join("stages"));
    let started = Instant::now();
    let o = stpipe_run(&file, &run_dir).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("is in use") && t.contains(&format!("PID {}", first.id())),
        "{t}"
    );
    assert!(t.contains("started") && t.contains("s ago"), "{t}");
    assert!(started.elapsed() < Duration::from_secs(30), "not at once");
    // The second run touched nothing of the first's (its checkpoints
    // only grow).
    for (p, _) in &before {
        assert!(
            p.exists() || p.to_string_lossy().contains(".tmp"),
            "{p:?} removed"
        );
    }
    signal(&first, "-INT");
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn item_4_a_signal_checkpoints_and_a_closed_pipe_ends_quietly() {
    let (reference, file) = long_workspace();
    let o = stpipe_run(&file, &reference.path().join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let want = saved_weights(&reference.path().join("out"));

    // SIGINT: the step finishes, a checkpoint is written, exit 130, and
    // the resumed run ends with the uninterrupted run's bytes.
    for sig in ["-INT", "-TERM"] {
        let (ws, file, run_dir, child) = training_run();
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(130), "{sig}: {t}");
        assert!(t.contains("stopped by a signal after step"), "{sig}: {t}");
        assert!(t.contains("resume"), "{sig}: no resume hint: {t}");
        assert_eq!(complete_checkpoints(&run_dir).len(), 1, "{sig}: {t}");
        assert!(!ws.path().join("out").exists());
        let o = stpipe_run(&file, &run_dir).output().unwrap();
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("resuming from the checkpoint at step"), "{t}");
        assert!(saved_weights(&ws.path().join("out")) == want, "{sig}");
    }

    // A second signal stops at once.
    let (ws, _file, _run_dir, child) = training_run();
    signal(&child, "-INT");
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));

    // A reader that goes away: `stpipe check a.stp b.stp 2>&1 | head -1`.
    let quiet = |status: std::process::ExitStatus, what: &str| {
        assert!(
            status.signal() == Some(libc::SIGPIPE) || matches!(status.code(), Some(0 | 1 | 141)),
            "{what}: {status:?}"
        );
    };
    let bad = ws.path().join("bad.stp");
    std::fs::write(&bad, "model m = Nope()\nmodel m = Nope()\n".repeat(50)).unwrap();
    let mut child = Command::new(BIN)
        .arg("check")
        .arg(&bad)
        .arg(&bad)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    quiet(child.wait().unwrap(), "check");
    // And mid-training.
    let (ws, file) = long_workspace();
    let mut child = stpipe_run(&file, &ws.path().join("run"))
        .arg("--max-steps")
        .arg("50")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    quiet(child.wait().unwrap(), "run");
}

/// Runs `script` in a user and mount namespace (where a small tmpfs can be
/// mounted without privileges), with `env`; `None` when the machine does
/// not allow it.
fn in_namespace(script: &Path, env: &[(&str, &str)]) -> Option<Output> {
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs \"$d\"",
        ])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs in a user namespace here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!("SKIPPED: no `unshare` ({e})");
            return None;
        }
    }
    let mut c = Command::new("unshare");
    c.args(["-rm", "sh"]).arg(script);
    for (k, v) in env {
        c.env(k, v);
    }
    Some(c.output().unwrap())
}

/// The shell side of the full-disk test, run on a tmpfs at `disk/`: a
/// first pipeline trains and saves `out`; the disk is filled but for one
/// and a half checkpoints of the second pipeline, which then fails (its
/// own run directory) at its second checkpoint; space is freed and the
/// second pipeline is run again. What each step left is copied to
/// `copy/` (off the tmpfs) for the test to read.
const FULL_DISK_SCRIPT: &str = r#"set -u
cd "$WS"
mount -t tmpfs -o size=8m tmpfs disk || exit 77
cp -r tiny data disk/
printf '%s' "$FIRST" > disk/first.stp
printf '%s' "$SECOND" > disk/second.stp
"$BIN" run disk/first.stp --run-dir disk/run1 --quiet > copy/first.log 2>&1; echo $? > copy/first.rc
cp -r disk/out copy/first-out
sum() { find disk/run1 -type f | sort | xargs cat | cksum; }
sum > copy/run1-before
ckpt=$(du -sk "$(find disk/run1 -type d -name 'step-*' | head -1)" | cut -f1)
avail=$(df -k --output=avail disk | tail -1)
dd if=/dev/zero of=disk/filler bs=1k count=$((avail - ckpt * 3 / 2 - 32)) > /dev/null 2>&1
"$BIN" run disk/second.stp --run-dir disk/run2 --quiet > copy/full.log 2>&1; echo $? > copy/full.rc
cp -r disk/out copy/full-out
sum > copy/run1-after
find disk/run2 -type d -name 'step-*' > copy/full-ckpts
rm disk/filler
"$BIN" run disk/second.stp --run-dir disk/run2 > copy/again.log 2>&1; echo $? > copy/again.rc
cp -r disk/out copy/again-out
find disk \( -name '*.tmp' -o -name '*.old' -o -name '*stpipe-tmp*' -o -name '*stpipe-old*' \) > copy/leftovers
"#;

#[test]
fn a_full_disk_stops_the_run_with_a_message_and_loses_nothing() {
    let first = tiny_pipeline(
        "out",
        "epochs: 1\n checkpoint: every 2 steps, keep 2\n seed: 1",
    );
    let second = tiny_pipeline(
        "out",
        "epochs: 2\n checkpoint: every 2 steps, keep 2\n seed: 2",
    );
    // The second pipeline's weights on a disk with room.
    let reference = tiny_workspace(40);
    let r = reference.path();
    std::fs::write(r.join("p.stp"), &second).unwrap();
    assert!(stpipe_run(&r.join("p.stp"), &r.join("run"))
        .output()
        .unwrap()
        .status
        .success());
    let want = saved_weights(&r.join("out"));

    let ws = tiny_workspace(40);
    let d = ws.path();
    for sub in ["disk", "copy"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("script.sh"), FULL_DISK_SCRIPT).unwrap();
    let ws_str = d.display().to_string();
    let env = [
        ("WS", ws_str.as_str()),
        ("BIN", BIN),
        ("FIRST", first.as_str()),
        ("SECOND", second.as_str()),
    ];
    let Some(o) = in_namespace(&d.join("script.sh"), &env) else {
        return;
    };
    let read = |f: &str| std::fs::read_to_string(d.join("copy").join(f)).unwrap_or_default();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(read("first.rc").trim(), "0", "{}", read("first.log"));
    let full = read("full.log");
    assert_eq!(read("full.rc").trim(), "1", "{full}");
    assert!(full.contains("disk is full"), "{full}");
    assert!(
        !full.contains("corrupt") && !full.contains("download"),
        "{full}"
    );
    // The model and the checkpoints of the first pipeline are intact, and
    // the second's first checkpoint was kept.
    assert!(saved_weights(&d.join("copy/full-out")) == saved_weights(&d.join("copy/first-out")));
    assert_eq!(read("run1-before"), read("run1-after"));
    assert!(
        !read("full-ckpts").trim().is_empty(),
        "no checkpoint of the second run"
    );
    let again = read("again.log");
    assert_eq!(read("again.rc").trim(), "0", "{again}");
    assert!(
        again.contains("resuming from the checkpoint at step"),
        "{again}"
    );
    assert!(saved_weights(&d.join("copy/again-out")) == want);
    eprintln!(
        "full disk: {}",
        full.lines()
            .find(|l| l.contains("disk is full"))
            .unwrap_or("")
    );
    assert_eq!(read("leftovers"), "");
}
