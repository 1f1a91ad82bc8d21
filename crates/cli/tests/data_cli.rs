//! `oneshot select` and `oneshot score` end to end, on shared/data and hand-written responses.

use std::path::PathBuf;
use std::process::{Command, Output};

use oneshot_data::verl::read_verl_parquet;
use serde_json::{json, Value};

/// `shared/data` with the training pool and the benchmarks, or `None` (the test skips; it fails
/// under `CI=true`).
fn shared_data() -> Option<PathBuf> {
    oneshot_shared_data::require("the training pool", "data/train/dsr_sub.parquet")?;
    oneshot_shared_data::require("the benchmark files", "data/benchmarks/math500/test.jsonl")?;
    Some(oneshot_shared_data::path("data"))
}

fn oneshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(args)
        .env_remove("ONESHOT_DATA")
        .output()
        .expect("runs oneshot")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "oneshot failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn select_writes_the_papers_pi1_file_and_prints_the_ranking() {
    let Some(data) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("pi1.parquet");
    let out = oneshot(&[
        "select",
        "--history",
        data.join("train/acc_step_500.json").to_str().unwrap(),
        "--pool",
        data.join("train/dsr_sub.parquet").to_str().unwrap(),
        "--rank",
        "1",
        "--repeat",
        "128",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(text.contains("| 1 | 124 | 0.4068 |"), "{text}");
    assert!(text.contains("| 2 | 267 |"), "{text}");
    assert!(text.contains("| 13 | 682 |"), "{text}");
    assert!(text.contains("chosen: pi_1 = index 124"), "{text}");
    let written = read_verl_parquet(&out_file).unwrap();
    assert_eq!(
        written,
        read_verl_parquet(&data.join("train/pi1_r128.parquet")).unwrap()
    );
}

#[test]
fn select_two_ranks_builds_the_merged_file() {
    let Some(data) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("m.parquet");
    let out = oneshot(&[
        "select",
        "--history",
        data.join("train/acc_step_500.json").to_str().unwrap(),
        "--pool",
        data.join("train/dsr_sub.parquet").to_str().unwrap(),
        "--rank",
        "1,13",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    stdout(&out);
    assert_eq!(
        read_verl_parquet(&out_file).unwrap(),
        read_verl_parquet(&data.join("train/merge_pi1_pi13_r128.parquet")).unwrap()
    );
}

#[test]
fn select_random_is_seeded_and_variance_needs_history() {
    let Some(data) = shared_data() else {
        return;
    };
    let pool = data.join("train/dsr_sub.parquet");
    let run = |seed: &str| {
        stdout(&oneshot(&[
            "select",
            "--pool",
            pool.to_str().unwrap(),
            "--method",
            "random",
            "--seed",
            seed,
            "--top",
            "5",
        ]))
    };
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
    let out = oneshot(&["select", "--pool", pool.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--history"));
}

/// aime24 problems 0 and 1 (labels 204 and 113), four samples each.
fn write_responses(path: &std::path::Path) {
    let lines = [
        json!({"idx": 0, "response": "So the walk takes \\boxed{204} minutes.", "n_tokens": 10, "finish_reason": "stop"}),
        json!({"idx": 0, "response": "Let me recheck: \\boxed{204}", "n_tokens": 20, "finish_reason": "stop"}),
        json!({"idx": 0, "response": "\\boxed{7}", "n_tokens": 30, "finish_reason": "length"}),
        json!({"idx": 0, "response": "I get \\boxed{204}.", "n_tokens": 40, "finish_reason": "stop"}),
        json!({"idx": 1, "response": "\\boxed{113}", "n_tokens": 50, "finish_reason": "stop"}),
        json!({"idx": 1, "response": "\\boxed{112}", "n_tokens": 60, "finish_reason": "stop"}),
        json!({"idx": 1, "response": "Rethinking... \\boxed{111}", "n_tokens": 70, "finish_reason": "stop"}),
        json!({"idx": 1, "response": "\\boxed{0}", "n_tokens": 80, "finish_reason": "length"}),
        // Outside `--limit 2`: not scored.
        json!({"idx": 5, "response": "\\boxed{1}"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn score_hand_written_responses_exactly() {
    let Some(data) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let responses = dir.path().join("responses.jsonl");
    write_responses(&responses);
    let out_dir = dir.path().join("out");
    let bench_dir = data.join("benchmarks");
    let args = [
        "score",
        "--responses",
        responses.to_str().unwrap(),
        "--benchmark",
        "aime24",
        "--data-dir",
        bench_dir.to_str().unwrap(),
        "--limit",
        "2",
        "--name",
        "pi1",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let printed = stdout(&oneshot(&args));

    // samples.jsonl: one checked record per response, in input order.
    let samples: Vec<Value> = std::fs::read_to_string(out_dir.join("samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 8);
    let expect = [
        (0, 0, "204", "204", true),
        (0, 1, "204", "204", true),
        (0, 2, "204", "7", false),
        (0, 3, "204", "204", true),
        (1, 0, "113", "113", true),
        (1, 1, "113", "112", false),
        (1, 2, "113", "111", false),
        (1, 3, "113", "0", false),
    ];
    let aime24_q0 = "Every morning Aya goes for a $9$-kilometer-long walk";
    for (s, (idx, sample, gold, extracted, correct)) in samples.iter().zip(expect) {
        assert_eq!(s["benchmark"], "aime24");
        assert_eq!(
            (s["idx"].as_u64().unwrap(), s["sample"].as_u64().unwrap()),
            (idx, sample)
        );
        assert_eq!(s["gold"], gold);
        assert_eq!(s["extracted"], extracted, "{s}");
        assert_eq!(s["correct"], correct, "{s}");
        let prompt = s["prompt"].as_str().unwrap();
        assert!(
            prompt.starts_with("<|im_start|>system\nPlease reason step by step"),
            "{prompt}"
        );
        assert!(prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
        if idx == 0 {
            assert!(prompt.contains(aime24_q0));
        }
    }
    assert_eq!(samples[2]["truncated"], true);
    assert_eq!(samples[3]["n_tokens"], 40);

    // summary.json: problem 0 has 3/4 correct, problem 1 has 1/4.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["name"], "pi1");
    assert_eq!(summary["six_benchmark_average"], Value::Null);
    let b = &summary["benchmarks"][0];
    assert_eq!(b["benchmark"], "aime24");
    assert_eq!(b["metric"], "avg@4");
    assert_eq!(b["score"], 50.0);
    assert_eq!(
        (
            b["problems"].as_u64(),
            b["samples"].as_u64(),
            b["correct_samples"].as_u64()
        ),
        (Some(2), Some(8), Some(4))
    );
    // pass@2: 1 - C(1,2)/C(4,2) = 1 and 1 - C(3,2)/C(4,2) = 1/2 -> 75%.
    assert_eq!(
        b["pass_at_k"],
        json!([{"k": 1, "value": 50.0}, {"k": 2, "value": 75.0}, {"k": 4, "value": 100.0}])
    );
    assert_eq!(b["mean_response_tokens"], 45.0);
    assert_eq!(b["max_response_tokens"], 80);
    assert_eq!(b["truncation_rate"], 25.0);
    assert_eq!(b["reflection_responses"], 2);

    // table.md, also printed.
    let table = std::fs::read_to_string(out_dir.join("table.md")).unwrap();
    assert_eq!(printed, table);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "| model | MATH500 | AIME24 | AMC23 | Minerva | OlympiadB | AIME25 | Avg |"
    );
    assert_eq!(lines[2], "| pi1 | - | 50.0 | - | - | - | - | - |");
    let chars: Vec<usize> = samples
        .iter()
        .map(|s| s["response"].as_str().unwrap().chars().count())
        .collect();
    let mean_chars = chars.iter().sum::<usize>() as f64 / 8.0;
    assert_eq!(
        lines[6],
        format!("| aime24 | avg@4 | 50.0 | 2 | 8 | @1: 50.0, @2: 75.0, @4: 100.0 | 45.0 | 80 | {mean_chars:.1} | 25.0% | 2 |")
    );

    // --resume keeps the finished samples and scores nothing twice.
    let mut resumed: Vec<&str> = args.to_vec();
    resumed.push("--resume");
    assert_eq!(stdout(&oneshot(&resumed)), table);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("samples.jsonl"))
            .unwrap()
            .lines()
            .count(),
        8
    );
}

#[test]
fn score_reports_missing_responses_and_missing_data() {
    let Some(data) = shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let responses = dir.path().join("responses.jsonl");
    write_responses(&responses);
    let out_dir = dir.path().join("out");
    // Without --limit every aime24 problem needs a response.
    let out = oneshot(&[
        "score",
        "--responses",
        responses.to_str().unwrap(),
        "--benchmark",
        "aime24",
        "--data-dir",
        data.join("benchmarks").to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no response for 27 of the 30 problems"),
        "{err}"
    );
    // No data directory at all.
    let out = oneshot(&[
        "score",
        "--responses",
        responses.to_str().unwrap(),
        "--benchmark",
        "aime24",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir"));
    // A bad line is reported with its line number.
    std::fs::write(&responses, "{\"idx\": 0}\n").unwrap();
    let out = oneshot(&[
        "score",
        "--responses",
        responses.to_str().unwrap(),
        "--benchmark",
        "aime24",
        "--data-dir",
        data.join("benchmarks").to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("responses.jsonl:1: field `response`: is missing"),
        "{err}"
    );
}
