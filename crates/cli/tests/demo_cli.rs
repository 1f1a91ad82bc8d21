//! `oneshot demo` and `oneshot lab reproduce` through the binary, on a tiny model pretrained by
//! `oneshot lab pretrain` in the test, with the tiny budget.
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary with stdout and stderr on pipes, progress lines at every update.
fn oneshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(args)
        .env("ONESHOT_PROGRESS_SECS", "0")
        .output()
        .expect("runs oneshot")
}

/// Stderr holds progress lines of `label` counting `unit`s up to `total`, with a rate and an
/// ETA (no timing is asserted).
fn assert_progress(out: &Output, label: &str, total: usize, unit: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    let head = format!("{label}: ");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&head)).collect();
    let counted = format!("/{total} {unit}, ");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&counted) && l.contains(&format!(" {unit}/s, ETA "))),
        "no progress line `{head}k{counted}<rate> {unit}/s, ETA ..` in:\n{err}"
    );
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "oneshot failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn tiny_base(dir: &Path) {
    let cfg = dir.join("tiny.toml");
    std::fs::write(
        &cfg,
        "steps = 25\nbatch_size = 8\nlr = 0.01\nwarmup_steps = 3\nvocab_size = 320\n\
         tokenizer_docs = 300\nmax_seq_len = 160\nlog_every = 0\nsave_every = 0\n\
         [shape]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n\
         num_attention_heads = 4\nnum_key_value_heads = 2\n",
    )
    .unwrap();
    let base = dir.join("base");
    let out = oneshot(&[
        "lab",
        "pretrain",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        base.to_str().unwrap(),
    ]);
    ok_stdout(&out);
    assert_progress(&out, "lab pretrain", 25, "steps");
}

#[test]
fn demo_and_reproduce_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    tiny_base(dir.path());
    let base = dir.path().join("base");
    let out = dir.path().join("demo");
    let run = oneshot(&[
        "demo",
        "--budget",
        "tiny",
        "--model",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "1",
    ]);
    let stdout = ok_stdout(&run);
    // The tiny budget: 12 held-out problems, 4 selection steps, 4 one-shot steps.
    assert_progress(&run, "base eval (greedy)", 12, "problems");
    assert_progress(&run, "selection pass (RL)", 4, "steps");
    assert_progress(&run, "1-shot RLVR on pi_1", 4, "steps");
    assert!(
        stdout.contains("| **all** |") && stdout.contains("pi_1 = pool example"),
        "{stdout}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for key in [
        "base_accuracy",
        "one_shot_accuracy",
        "base_lenient_accuracy",
        "one_shot_lenient_accuracy",
        "pi1_index",
        "wall_seconds",
    ] {
        assert!(!summary[key].is_null(), "summary.json lacks {key}");
    }
    for f in ["report.md", "curves.png", "families.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    let rep = dir.path().join("reproduce");
    let run = oneshot(&[
        "lab",
        "reproduce",
        "--seeds",
        "2",
        "--budget",
        "tiny",
        "--model",
        base.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]);
    let stdout = ok_stdout(&run);
    assert_progress(&run, "pi1 seed 1", 4, "steps");
    for run in [
        "base",
        "full_pool",
        "pi1",
        "random_example",
        "pi1_no_entropy",
        "entropy_only",
        "format_reward_only",
        "pi1_wrong_label",
    ] {
        assert!(
            stdout.contains(&format!("| {run} |")),
            "no row for {run}:\n{stdout}"
        );
    }
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("reproduce.json")).unwrap())
            .unwrap();
    assert_eq!(j["runs"].as_array().unwrap().len(), 8 * 2);
    for row in j["summary"].as_array().unwrap() {
        assert_eq!(row["seeds"].as_u64(), Some(2));
        let m = row["strict_mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&m), "{row}");
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(["demo", "--model", "/nonexistent"])
        .env("ONESHOT_ISA", "avx9000")
        .output()
        .expect("runs oneshot");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ONESHOT_ISA") && err.contains("avx9000") && err.contains("portable"),
        "{err}"
    );
    let out = oneshot(&["demo", "--budget", "huge", "--model", "/nonexistent"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("huge") && err.contains("quick"), "{err}");
    let out = oneshot(&[
        "demo",
        "--model",
        "/nonexistent/model",
        "--out",
        "/tmp/oneshot-demo-never-written",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model"), "{err}");
    let out = oneshot(&["lab", "reproduce", "--seeds", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seeds must be at least 1"));
}
