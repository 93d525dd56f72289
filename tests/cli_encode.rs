//! `stpipe encode` end to end on a tiny model.

use crate::common;

use std::process::Command;

fn stpipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stpipe"))
}

#[test]
fn encode_writes_jsonl_npy_and_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    common::write_tiny_bert(&model, 9);
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, common::SENTENCES.join("\n") + "\n").unwrap();

    let out = stpipe()
        .args(["encode", "--model"])
        .arg(&model)
        .args(["--batch-size", "2", "--normalize"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<f32>> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), common::SENTENCES.len());
    for r in &rows {
        assert_eq!(r.len(), 32);
        let n: f32 = r.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }

    let npy = tmp.path().join("e.npy");
    let st = stpipe()
        .args(["encode", "--format", "npy", "--output"])
        .arg(&npy)
        .arg("--model")
        .arg(&model)
        .arg(&input)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    assert!(std::str::from_utf8(&bytes[10..10 + hlen])
        .unwrap()
        .contains("(5, 32)"));
    assert_eq!(bytes.len(), 10 + hlen + 5 * 32 * 4);

    let sf = tmp.path().join("e.safetensors");
    let st = stpipe()
        .args(["encode", "--format", "safetensors", "-o"])
        .arg(&sf)
        .arg("--model")
        .arg(&model)
        .arg(&input)
        .status()
        .unwrap();
    assert!(st.success());
    let t = candle_core::safetensors::load(&sf, &candle_core::Device::Cpu).unwrap();
    assert_eq!(t["embeddings"].dims(), [5, 32]);
}

#[test]
fn encode_reports_a_broken_model_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    common::write_tiny_bert(&model, 9);
    std::fs::remove_file(model.join("config.json")).unwrap();
    let out = stpipe()
        .args(["encode", "--model"])
        .arg(&model)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = stpipe()
        .args(["encode", "--model", "no-such-org/no-such-model"])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", tmp.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-org/no-such-model"), "{err}");
}

#[test]
fn layers_cut_the_model_and_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    common::write_tiny_bert(&model, 9);
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, common::SENTENCES.join("\n") + "\n").unwrap();
    let run = |extra: &[&str]| {
        stpipe()
            .args(["encode", "--model"])
            .arg(&model)
            .args(extra)
            .arg(&input)
            .output()
            .unwrap()
    };
    let full = run(&[]);
    let cut = run(&["--layers", "1"]);
    assert!(
        full.status.success() && cut.status.success(),
        "{}",
        String::from_utf8_lossy(&cut.stderr)
    );
    assert_ne!(
        full.stdout, cut.stdout,
        "one layer embeds differently from all"
    );
    let bad = run(&["--layers", "99"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--layers 99") && err.contains("layers"),
        "{err}"
    );
}

#[test]
fn a_bad_batch_token_setting_stops_every_command_before_it_starts() {
    for value in ["many", "-3", "1.5"] {
        let o = stpipe()
            .arg("components")
            .env("STPIPE_BATCH_TOKENS", value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{value}: {err}");
        assert!(o.stdout.is_empty(), "{value}: the command ran");
        assert!(
            err.contains("STPIPE_BATCH_TOKENS") && err.contains("whole number"),
            "{value}: {err}"
        );
    }
    let o = stpipe()
        .arg("components")
        .env("STPIPE_BATCH_TOKENS", "0")
        .output()
        .unwrap();
    assert!(o.status.success());
}
