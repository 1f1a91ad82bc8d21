//! `oneshot demo`, `oneshot lab reproduce` and `oneshot lab selection` through the binary, on a
//! tiny model pretrained by `oneshot lab pretrain` in the test, with the tiny budget.
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
    // The families other than pi_1's: its family left out, the counts add up.
    let other = &summary["other_families"];
    let family = summary["pi1"]["family"].as_str().unwrap();
    assert_eq!(other["excluded"].as_str(), Some(family));
    let own = summary["base"]["by_family"][family]["n"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        other["base"]["n"].as_u64().unwrap() + own,
        summary["eval_problems"].as_u64().unwrap()
    );
    assert_eq!(other["base"]["n"], other["one_shot"]["n"]);
    assert!(
        stdout.contains(&format!("families other than {family}: strict")),
        "{stdout}"
    );
    // Held-out points carry every rate, for all families and the others.
    for p in summary["test_curve"].as_array().unwrap() {
        for rate in ["strict", "lenient", "boxed", "direct", "slip", "checked"] {
            assert!(p[rate].is_number(), "{rate} missing in {p}");
            assert!(
                p["other_families"][rate].is_number(),
                "{rate} missing in {p}"
            );
        }
    }
    // The saturation step is the metrics file's first step at the budget's threshold.
    let threshold = summary["saturation_threshold"].as_f64().unwrap();
    let metrics = std::fs::read_to_string(out.join("one_shot/metrics.jsonl")).unwrap();
    let first = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|m| m["acc/mean"].as_f64().unwrap() >= threshold)
        .map(|m| m["step"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(summary["saturation_step"], first);
    assert_eq!(summary["post_saturation"].is_null(), first.is_null());

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
    assert!(
        stdout.contains("| lenient other % |") && stdout.contains("| direct % | slip % |"),
        "{stdout}"
    );
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
    let rep_text = std::fs::read_to_string(rep.join("reproduce.json")).unwrap();
    let j: Value = serde_json::from_str(&rep_text).unwrap();
    assert_eq!(j["runs"].as_array().unwrap().len(), 8 * 2);
    for row in j["summary"].as_array().unwrap() {
        assert_eq!(row["seeds"].as_u64(), Some(2));
        for col in ["strict_mean", "other_lenient_mean", "direct_mean"] {
            let m = row[col].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&m), "{col} in {row}");
        }
        assert!(row.get("slip_mean").is_some(), "{row}");
    }
    for r in j["runs"].as_array().unwrap() {
        let excluded = r["excluded"].as_str().unwrap();
        if r["variant"] != "random_example" {
            assert_eq!(excluded, family, "{r}");
        }
        assert!(r["other_families"]["n"].as_u64() <= r["heldout"]["n"].as_u64());
    }
    // A second invocation finds every run finished: no training, the same file.
    let again = oneshot(&[
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
    ok_stdout(&again);
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains(" seed 1: "),
        "a finished run ran again:\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(rep.join("reproduce.json")).unwrap(),
        rep_text
    );
}

/// `oneshot lab selection` with the arguments after the base and output.
fn selection(base: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "lab",
        "selection",
        "--budget",
        "tiny",
        "--model",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    oneshot(&args)
}

/// Progress lines of the study's 1-shot runs in stderr.
fn run_lines(out: &Output) -> Vec<String> {
    let mut labels: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| {
            l.starts_with("selection top")
                || l.starts_with("selection random")
                || l.starts_with("selection bottom")
        })
        .filter_map(|l| Some(l.split(": ").next()?.to_string()))
        .collect();
    labels.dedup();
    labels
}

/// A study's JSON without the times, which a rerun of a run changes.
fn without_times(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("work_seconds");
    for r in v["runs"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("seconds");
    }
    v
}

#[test]
fn selection_compares_three_groups_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    tiny_base(dir.path());
    let base = dir.path().join("base");
    let out = dir.path().join("selection");
    let first = selection(&base, &out, &["--seeds", "2", "--k", "1"]);
    let stdout = ok_stdout(&first);
    assert_progress(&first, "selection pass (RL)", 4, "steps");
    // Three groups of one example, two seeds each.
    assert_eq!(run_lines(&first).len(), 6, "{:?}", run_lines(&first));
    for row in [
        "| base |",
        "| top | 2 |",
        "| random | 2 |",
        "| bottom | 2 |",
    ] {
        assert!(stdout.contains(row), "no `{row}` row:\n{stdout}");
    }
    assert!(stdout.contains("## Per example"), "{stdout}");
    let text = std::fs::read_to_string(out.join("selection.json")).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap();
    let runs = j["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    let groups: Vec<&str> = j["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["top", "random", "bottom"]);
    let ranks: Vec<u64> = j["picks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rank"].as_u64().unwrap())
        .collect();
    // The tiny budget ranks its 8 selection-pool examples: top 1, bottom 8, random between.
    assert_eq!((ranks[0], ranks[2]), (1, 8));
    assert!((2..=7).contains(&ranks[1]), "{ranks:?}");
    for r in runs {
        assert_eq!(r["other_families"]["n"], r["base_other_families"]["n"]);
        assert!(r["other_families"]["n"].as_u64() < r["heldout"]["n"].as_u64());
    }

    // Everything finished: a second invocation trains nothing and leaves the file as it was.
    let second = selection(&base, &out, &["--seeds", "2", "--k", "1"]);
    ok_stdout(&second);
    assert!(run_lines(&second).is_empty(), "{:?}", run_lines(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!err.contains("selection pass (RL): "), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("selection.json")).unwrap(),
        text
    );

    // An interrupted study (its last run missing) reruns that run only, to the same numbers.
    let mut cut = j.clone();
    let last = cut["runs"].as_array_mut().unwrap().pop().unwrap();
    std::fs::write(
        out.join("selection.json"),
        serde_json::to_string_pretty(&cut).unwrap(),
    )
    .unwrap();
    let third = selection(&base, &out, &["--seeds", "2", "--k", "1"]);
    ok_stdout(&third);
    let rerun = run_lines(&third);
    assert_eq!(rerun.len(), 1, "{rerun:?}");
    assert!(
        rerun[0].ends_with(&format!("example {} seed 1", last["example"])),
        "{rerun:?} vs {last}"
    );
    let resumed: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("selection.json")).unwrap())
            .unwrap();
    assert_eq!(without_times(resumed), without_times(j));

    // Other settings in the same directory are refused, naming the file and the setting.
    let other = selection(&base, &out, &["--seeds", "2", "--k", "2"]);
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("selection.json") && err.contains("settings.k"),
        "{err}"
    );
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
    let out = oneshot(&["lab", "selection", "--k", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--k must be at least 1"));
}
