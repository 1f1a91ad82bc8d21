//! `oneshot demo` and `oneshot lab reproduce` through the binary, on a tiny model pretrained by
//! `oneshot lab pretrain` in the test, with the tiny budget.
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn oneshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(args)
        .output()
        .expect("runs oneshot")
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
    let cfg = dir.join("tiny.json");
    std::fs::write(
        &cfg,
        r#"{"steps": 25, "batch_size": 8, "lr": 0.01, "warmup_steps": 3, "vocab_size": 320, "tokenizer_docs": 300,
            "max_seq_len": 160, "log_every": 0, "save_every": 0,
            "shape": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}}"#,
    )
    .unwrap();
    let base = dir.join("base");
    ok_stdout(&oneshot(&[
        "lab",
        "pretrain",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        base.to_str().unwrap(),
        "--no-progress",
    ]));
}

#[test]
fn demo_and_reproduce_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    tiny_base(dir.path());
    let base = dir.path().join("base");
    let out = dir.path().join("demo");
    let stdout = ok_stdout(&oneshot(&[
        "demo",
        "--budget",
        "tiny",
        "--model",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "1",
        "--no-progress",
    ]));
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
    let stdout = ok_stdout(&oneshot(&[
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
        "--no-progress",
    ]));
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
    let out = oneshot(&["demo", "--budget", "huge", "--model", "/nonexistent"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown budget `huge`"), "{err}");
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
