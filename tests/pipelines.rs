//! The example pipelines check clean and plan; the reference is up to date;
//! the command line keeps its exit-code contract.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use stpipe::check::{check_file, Module, PoolingMode, Step};
use stpipe::plan::{Plan, StepKind};

fn pipelines() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(common::repo().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "stp"))
        .collect();
    v.sort();
    v
}

#[test]
fn example_pipelines_are_valid() {
    let files = pipelines();
    assert!(files.len() >= 5);
    for f in files {
        let (report, p) = check_file(&f, &common::options()).unwrap();
        assert!(
            report.diags.is_empty(),
            "{}:\n{}",
            f.display(),
            report.to_plain()
        );
        let p = p.unwrap();
        assert!(!p.models.is_empty());
        assert!(!p.steps.is_empty());
    }
}

#[test]
fn sts_pipeline_resolves_types() {
    let f = common::repo().join("pipelines/sts.stp");
    let (_, p) = check_file(&f, &common::options()).unwrap();
    let p = p.unwrap();
    let m = p.model("sbert").unwrap();
    assert_eq!(m.dim, Some(384));
    let t = &m.modules[0];
    assert_eq!((t.kind.as_str(), t.out_dim), ("Transformer", Some(384)));
    assert_eq!(t.args.opt_usize("max_seq_length").unwrap(), Some(128));
    let train = p.data_source("sts_train").unwrap();
    assert!(matches!(&train.kind, stpipe::check::DataKind::File { path, .. } if path.is_file()));
    assert_eq!(
        train.label_column().unwrap().ty,
        Some(stpipe::check::ColType::Float)
    );
    let stage = p.stages().next().unwrap();
    assert_eq!(stage.warmup, stpipe::check::Warmup::Fraction(0.1));
    assert_eq!(stage.evaluate_every, Some(200));
    assert_eq!(stage.checkpoint_keep, Some(2));
    assert_eq!(stage.optimizer.args.f64("lr").unwrap(), 2e-5);
    assert_eq!(p.objective("sim").unwrap().batch_size, 16);
    assert!(matches!(p.steps.last(), Some(Step::Expect(e)) if e.value == 0.84));
}

#[test]
fn nli_widths_follow_the_chain() {
    let f = common::repo().join("pipelines/nli.stp");
    let (_, p) = check_file(&f, &common::options()).unwrap();
    let p = p.unwrap();
    let m = p.model("sbert").unwrap();
    assert_eq!(m.dim, Some(384));
    let pool: &Module = &m.modules[1];
    assert_eq!(pool.kind, "Pooling");
    assert_eq!((pool.in_dim, pool.out_dim), (Some(384), Some(384)));
    assert_eq!(
        pool.args.choices::<PoolingMode>("mode").unwrap(),
        [PoolingMode::Cls]
    );
    assert_eq!(m.modules[2].kind, "Normalize");
}

#[test]
fn two_stage_plan_orders_stages() {
    let f = common::repo().join("pipelines/two-stage.stp");
    let (_, p) = check_file(&f, &common::options()).unwrap();
    let plan = Plan::build(&p.unwrap()).unwrap();
    let stage = |name: &str| {
        plan.steps()
            .find(|(_, s)| matches!(&s.kind, StepKind::Train { stage, .. } if stage == name))
            .map(|(n, _)| n)
            .unwrap()
    };
    let (s1, s2) = (stage("nli_stage"), stage("sts_stage"));
    assert!(
        plan.inputs(s2).contains(&s1),
        "stage 2 must depend on stage 1"
    );
    let dot = plan.to_dot();
    assert!(dot.contains(&format!("n{} -> n{};", s1.index(), s2.index())));
    // Fingerprints are stable across builds.
    let (_, p2) = check_file(&f, &common::options()).unwrap();
    let plan2 = Plan::build(&p2.unwrap()).unwrap();
    let fps = |p: &Plan| {
        p.steps()
            .map(|(_, s)| s.fingerprint.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(fps(&plan), fps(&plan2));
}

#[test]
fn reference_is_up_to_date() {
    let path = common::repo().join("docs/reference.md");
    let want = stpipe::registry::reference_markdown();
    if std::env::var_os("UPDATE").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/reference.md is out of date: regenerate it with \
         `cargo run -q -- components > docs/reference.md` (or UPDATE=1 cargo test --test pipelines)"
    );
}

fn stpipe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stpipe"));
    c.env("STPIPE_MODEL_PATH", common::repo().join("../shared/models"));
    c.env_remove("STPIPE_DATA");
    c
}

#[test]
fn cli_exit_codes() {
    let repo = common::repo();
    let ok = stpipe().arg("check").args(pipelines()).output().unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = stpipe()
        .args(["check", "--format", "json"])
        .arg(repo.join("tests/invalid/unknown-loss.stp"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    let d = &doc["files"][0]["diagnostics"][0];
    assert_eq!(d["code"], "unknown-name");
    assert_eq!(d["line"], 6);
    assert!(d["help"].as_str().unwrap().contains("CosineSimilarityLoss"));
    let usage = stpipe().args(["check", "--no-such-flag"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let missing = stpipe()
        .args(["check", "/no/such/file.stp"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let comps = stpipe().arg("components").output().unwrap();
    assert_eq!(comps.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&comps.stdout).contains("MultipleNegativesRankingLoss"));
}

#[test]
fn data_root_flag_sets_interpolation() {
    let repo = common::repo();
    let out = stpipe()
        .arg("--data-root")
        .arg("/no/such/root")
        .arg("check")
        .arg(repo.join("pipelines/sts.stp"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/no/such/root/stsbenchmark/sts-train.csv")
    );
}

/// A relative `--data-root` starts at the current directory, not at the
/// pipeline file's.
#[test]
fn a_relative_data_root_starts_at_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("cwd/data/stsbenchmark")).unwrap();
    std::fs::create_dir_all(tmp.path().join("elsewhere")).unwrap();
    let rows = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane.\tA jet.\n";
    for f in ["sts-train.csv", "sts-dev.csv", "sts-test.csv"] {
        std::fs::write(tmp.path().join("cwd/data/stsbenchmark").join(f), rows).unwrap();
    }
    let p = tmp.path().join("elsewhere/p.stp");
    std::fs::write(
        &p,
        "data d = tsv(\"${STPIPE_DATA}/stsbenchmark/sts-dev.csv\", header: false, quoting: none) \
         { sentence1: col(5), sentence2: col(6), score: col(4) / 5.0 }\n",
    )
    .unwrap();
    let out = stpipe()
        .current_dir(tmp.path().join("cwd"))
        .args(["--data-root", "data", "check", "--format", "json"])
        .arg(&p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("not found"), "{text}");
}

#[test]
fn misc_fixture_is_valid() {
    let f = common::repo().join("tests/fixtures/valid-misc.stp");
    let (report, p) = check_file(&f, &common::options()).unwrap();
    assert!(report.diags.is_empty(), "{}", report.to_plain());
    let p = p.unwrap();
    let base = p.model("base").unwrap();
    assert_eq!(
        (base.modules[0].kind.as_str(), base.modules[0].out_dim),
        ("load", Some(384))
    );
    let dense = &base.modules[1];
    assert_eq!(
        (dense.kind.as_str(), dense.in_dim, dense.out_dim),
        ("Dense", Some(384), Some(128))
    );
    let other = p.model("other").unwrap();
    assert_eq!(other.modules[1].out_dim, Some(1152));
    let scored = p.data_source("scored").unwrap();
    let names: Vec<&str> = scored.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["query", "answer", "score"]);
    assert_eq!(p.data_source("qa2").unwrap().limit, Some(1));
    let precisions: Vec<&str> = p.stages().map(|s| s.precision.name()).collect();
    assert_eq!(precisions, ["bf16", "fp32"]);
    Plan::build(&p).unwrap();
}

#[test]
fn fingerprints_follow_file_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("a.tsv"), "s1\ts2\tscore\nx\ty\t0.5\n").unwrap();
    std::fs::write(dir.join("b.tsv"), "s1\ts2\tscore\nu\tv\t0.25\n").unwrap();
    let models = common::repo().join("../shared/models/all-MiniLM-L6-v2");
    let src = format!(
        "model m = Transformer(\"{}\") -> Pooling(mean)\n\
         data a = tsv(\"a.tsv\") {{ sentence1: col(\"s1\"), sentence2: col(\"s2\"), score: col(\"score\") }}\n\
         data b = tsv(\"b.tsv\") {{ sentence1: col(\"s1\"), sentence2: col(\"s2\"), score: col(\"score\") }}\n\
         objective o = CosineSimilarityLoss(m) on a\n\
         evaluator e = EmbeddingSimilarity(m, b)\n\
         train m {{ objectives: [o] }}\n\
         expect e.spearman_cosine > 0.1\n",
        models.display()
    );
    let file = dir.join("p.stp");
    std::fs::write(&file, src).unwrap();
    let fps = || {
        let (r, p) = check_file(&file, &common::options()).unwrap();
        assert!(!r.has_errors(), "{}", r.to_plain());
        let plan = Plan::build(&p.unwrap()).unwrap();
        plan.steps()
            .map(|(_, s)| (s.kind.tag().to_string(), s.fingerprint.clone()))
            .collect::<Vec<_>>()
    };
    let before = fps();
    std::fs::write(dir.join("a.tsv"), "s1\ts2\tscore\nx\ty\t0.75\n").unwrap();
    let after = fps();
    assert_eq!(before.len(), after.len());
    for ((tag, x), (_, y)) in before.iter().zip(&after) {
        match tag.as_str() {
            // The model and the evaluation data do not read a.tsv...
            "load-model" => assert_eq!(x, y),
            // ...but a's load, the training and what follows do.
            "train" | "evaluate" | "expect" => assert_ne!(x, y, "{tag}"),
            _ => {}
        }
    }
    assert_ne!(before[1].1, after[1].1, "load data a");
    assert_eq!(before[2].1, after[2].1, "load data b");
    // Writing the default precision keeps the fingerprints (those of
    // stages from before the setting existed); bf16 trains anew.
    let src = std::fs::read_to_string(&file).unwrap();
    let train = |p: &str| -> String {
        let with = src.replace(
            "objectives: [o] }",
            &format!("objectives: [o], precision: {p} }}"),
        );
        std::fs::write(&file, with).unwrap();
        fps().into_iter().find(|(t, _)| t == "train").unwrap().1
    };
    let plain = after.iter().find(|(t, _)| t == "train").unwrap().1.clone();
    assert_eq!(train("fp32"), plain, "precision: fp32 is the default");
    assert_ne!(train("bf16"), plain, "precision: bf16 is another training");
}

#[test]
fn model_path_flag_finds_models() {
    let out = Command::new(env!("CARGO_BIN_EXE_stpipe"))
        .env_remove("STPIPE_MODEL_PATH")
        .env("HF_HUB_CACHE", "/nonexistent")
        .arg("--model-path")
        .arg(common::repo().join("../shared/models"))
        .arg("check")
        .arg(common::repo().join("pipelines/nli.stp"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("ok (0 warning(s))"), "{err}");
}

/// A save (and an expect's evaluation) of a model between two of its
/// stages must run before the second stage changes the model: the plan
/// orders them with an order edge, and the execution order follows every
/// edge.
#[test]
fn steps_that_read_a_model_state_run_before_it_changes() {
    let Some(model) = common::minilm_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(
        tmp.path().join("data/p.tsv"),
        "s1\ts2\tscore\nx\ty\t0.5\nu\tv\t0.25\n",
    )
    .unwrap();
    let src = format!(
        "model m = Transformer(\"{}\") -> Pooling(mean)\n\
         data d = tsv(\"data/p.tsv\")\n\
         objective o = CosineSimilarityLoss(m) on d\n\
         evaluator e = EmbeddingSimilarity(m, d)\n\
         train m as one {{ objectives: [o] }}\n\
         save m to \"after-one\"\n\
         expect e.spearman_cosine >= -1\n\
         train m as two {{ objectives: [o] }}\n\
         save m to \"after-two\"\n",
        model.display()
    );
    let (report, p) = stpipe::check::check_source("p.stp", src, tmp.path(), &common::options());
    let p = p.unwrap_or_else(|| panic!("{}", report.to_plain()));
    let plan = Plan::build(&p).unwrap();
    let find = |f: &dyn Fn(&StepKind) -> bool| {
        plan.steps()
            .find(|(_, s)| f(&s.kind))
            .map(|(n, _)| n)
            .unwrap()
    };
    let two = find(&|k| matches!(k, StepKind::Train { stage, .. } if stage == "two"));
    let save_one =
        find(&|k| matches!(k, StepKind::Save { path, .. } if path.ends_with("after-one")));
    let eval = find(&|k| matches!(k, StepKind::Evaluate { .. }));
    let order = plan.execution_order();
    assert_eq!(order.len(), plan.graph.node_count());
    let pos = |n| order.iter().position(|&x| x == n).unwrap();
    assert!(pos(save_one) < pos(two) && pos(eval) < pos(two));
    for e in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(e).unwrap();
        assert!(pos(a) < pos(b), "edge {a:?} -> {b:?} out of order");
    }
    let text = plan.to_text();
    assert!(text.contains("(after #"), "{text}");
    assert!(plan.to_dot().contains("[style=dashed]"));
}

/// Every example pipeline really runs: a smoke run of each (two steps per
/// stage, 32 rows per source) exits 0, expectations included. The files
/// are copied into a temporary directory, so that their saves land there;
/// the data and model come from the shared directory.
#[test]
fn every_pipeline_smoke_runs() {
    let Some(model_dir) = common::minilm_dir() else {
        return;
    };
    let data = common::shared_dir().join("data");
    if !data.is_dir() {
        eprintln!("SKIPPED: {} is absent", data.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let copies = tmp.path().join("pipelines");
    std::fs::create_dir_all(&copies).unwrap();
    // Pipelines that start from a test fixture name it `../tests/...`.
    std::os::unix::fs::symlink(common::repo().join("tests"), tmp.path().join("tests")).unwrap();
    let files = pipelines();
    assert!(files.len() >= 8);
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let copy = copies.join(f.file_name().unwrap());
        std::fs::copy(&f, &copy).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_stpipe"))
            .arg("--model-path")
            .arg(model_dir.parent().unwrap())
            .arg("--data-root")
            .arg(&data)
            .arg("run")
            .arg(&copy)
            .args(["--max-steps", "2", "--limit", "32", "--quiet"])
            .arg("--run-dir")
            .arg(tmp.path().join("runs").join(&name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: exit {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
