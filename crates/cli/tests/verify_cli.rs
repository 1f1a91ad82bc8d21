//! End-to-end tests of `oneshot verify` (single pair and JSONL modes).

use std::io::Write;
use std::process::{Command, Stdio};

fn oneshot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oneshot"))
}

#[test]
fn single_pair_prints_verdict_and_extractions() {
    let out = oneshot()
        .args([
            "verify",
            "--gold",
            "\\frac{1}{2}",
            "--prediction",
            "so the answer is $\\boxed{0.5}$.",
        ])
        .output()
        .expect("run oneshot");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("verdict: correct"), "{text}");
    assert!(text.contains("extracted: 0.5"), "{text}");
    assert!(text.contains("gold_extracted: \\frac{1}{2}"), "{text}");

    let out = oneshot()
        .args(["verify", "--gold", "3", "--prediction", "\\boxed{4}"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("verdict: incorrect"));
}

#[test]
fn jsonl_keeps_order_passes_fields_and_reports_bad_lines() {
    let input = concat!(
        r#"{"id": 1, "prediction": "The answer is $\\boxed{\\frac{2}{4}}$.", "gold": "0.5"}"#,
        "\n",
        "not json\n",
        r#"{"id": 3, "prediction": "x"}"#,
        "\n",
        r#"{"id": 4, "prediction": "I got 7", "gold": "8"}"#,
        "\n",
        r#"{"id": 5, "prediction": 5, "gold": "5"}"#,
        "\n",
    );
    let mut child = oneshot()
        .args(["verify", "--jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn oneshot");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad lines must give exit code 2"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["correct"], true);
    assert_eq!(lines[0]["extracted"], "\\frac{2}{4}");
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("invalid JSON"));
    assert_eq!(lines[2]["line"], 3);
    assert!(lines[2]["error"].as_str().unwrap().contains("gold"));
    assert_eq!(lines[3]["id"], 4);
    assert_eq!(lines[3]["correct"], false);
    assert!(lines[4]["error"].as_str().unwrap().contains("prediction"));
}

#[test]
fn jsonl_file_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(
        &path,
        "{\"prediction\": \"we tried 12 and then 15\", \"gold\": \"15\"}\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", "--jsonl", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = oneshot().args(&args).output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["correct"].as_bool().unwrap()
    };
    // The sentence ends in 15, so the closing-number rule finds it even without the fallback.
    assert!(run(&[]));
    assert!(run(&["--last-number-fallback"]));
    assert!(!run(&["--boxed-only"]));
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = oneshot()
        .args(["verify", "--jsonl", "/nonexistent/cases.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/cases.jsonl"));
}
