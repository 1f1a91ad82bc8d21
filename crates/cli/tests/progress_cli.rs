//! Long commands on a pipe: `oneshot eval` with `ONESHOT_PROGRESS_SECS=0` prints a progress line
//! per finished sample (done/total, rate, ETA) and a final line, and its output directory gets a
//! `run.json`. Runs without the paper's data: the benchmark file is written here. No timing is
//! asserted, only the shape of each line.

use std::path::Path;
use std::process::Command;

use oneshot_eval::testing::write_tiny_model;
use serde_json::Value;

/// `DIR/aime24/test.jsonl` with the benchmark's 30 records, made up.
fn write_aime24(dir: &Path) {
    let bench = dir.join("aime24");
    std::fs::create_dir_all(&bench).unwrap();
    let lines: String = (0..30)
        .map(|i| {
            format!(
                "{{\"problem\": \"What is {i} + 1?\", \"answer\": \"{}\"}}\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(bench.join("test.jsonl"), lines).unwrap();
}

/// `<rate> samples/s, ETA <duration or ?>`.
fn rate_and_eta(text: &str) -> bool {
    let Some((rate, eta)) = text.split_once(" samples/s, ETA ") else {
        return false;
    };
    rate.parse::<f64>().is_ok_and(|r| r >= 0.0)
        && (eta == "?"
            || (eta.ends_with(['s', 'm', 'h'])
                && eta
                    .chars()
                    .all(|c| c.is_ascii_digit() || "smhd".contains(c))))
}

#[test]
fn eval_on_a_pipe_prints_progress_lines_and_writes_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-qwen");
    write_tiny_model(&model, 3).unwrap();
    let data = dir.path().join("benchmarks");
    write_aime24(&data);
    let out_dir = dir.path().join("eval");
    let args = [
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--benchmarks",
        "aime24",
        "--limit",
        "3",
        "--samples",
        "2",
        "--max-tokens",
        "8",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(args)
        .env("ONESHOT_PROGRESS_SECS", "0")
        .env_remove("ONESHOT_DATA")
        .output()
        .expect("runs oneshot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "oneshot eval failed:\n{stderr}");

    // One line per finished sample (every update prints at interval 0), then the final line.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("eval aime24: "))
        .collect();
    assert_eq!(lines.len(), 7, "{stderr}");
    for (k, line) in lines[..6].iter().enumerate() {
        let rest = line
            .strip_prefix(&format!("eval aime24: {}/6 samples, ", k + 1))
            .unwrap_or_else(|| panic!("line {k}: {line}\n{stderr}"));
        assert!(rate_and_eta(rest), "{line}");
    }
    let last = lines[6]
        .strip_prefix("eval aime24: 6/6 samples in ")
        .unwrap_or_else(|| panic!("{}", lines[6]));
    let (_, rate) = last.split_once(", ").unwrap();
    assert!(
        rate.strip_suffix(" samples/s")
            .is_some_and(|r| r.parse::<f64>().is_ok()),
        "{last}"
    );

    // run.json: the command, the resolved configuration, the build and the machine.
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let command = run["command"].as_str().unwrap();
    assert!(
        command.ends_with(&args.join(" ")) && command.contains("oneshot"),
        "{command}"
    );
    assert_eq!(run["config"]["threads"], 1);
    assert_eq!(run["config"]["batch_size"], 2);
    assert_eq!(run["config"]["benchmarks"][0]["benchmark"], "aime24");
    assert_eq!(run["config"]["benchmarks"][0]["problems"], 3);
    assert_eq!(run["config"]["benchmarks"][0]["decoding"]["samples"], 2);
    assert_eq!(
        run["config"]["benchmarks"][0]["decoding"]["max_new_tokens"],
        8
    );
    assert!(run["git"]["commit"].is_string());
    assert!(run["cpu"]["model"].is_string());
    assert_eq!(run["threads"], 1);
    assert!(
        run["finished_at"].is_string(),
        "the record is completed at the end"
    );
    // The tiny model's forward passes ran some matmul kernel path, and the ISA line says which
    // level was active.
    let paths = run["kernels"]["paths"].as_array().unwrap();
    assert!(
        paths
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("matmul"))),
        "{paths:?}"
    );
    assert!(
        run["kernels"]["isa"]
            .as_str()
            .is_some_and(|s| s.contains("active")),
        "{}",
        run["kernels"]
    );
}
