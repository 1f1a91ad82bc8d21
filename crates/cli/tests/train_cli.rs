//! `oneshot train` through the built binary on the toy task (tiny random model, one-example
//! parquet, a toy benchmark directory): the run directory (resolved config, metrics rows,
//! checkpoints loadable as models, plots, rollout accuracy history), `--resume` after an
//! interruption ending bit-identical to an uninterrupted run, validation numbers equal to
//! `oneshot eval` on the saved checkpoint, and `oneshot select` on the run's accuracy history.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oneshot_train::metrics::read_metrics;
use oneshot_train::{toy, TrainConfig};
use serde_json::{Map, Value};

type Row = Map<String, Value>;

fn oneshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(args)
        .env_remove("ONESHOT_DATA")
        .output()
        .expect("runs oneshot")
}

fn succeed(args: &[&str]) -> String {
    let out = oneshot(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "oneshot {args:?} failed:\n{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A benchmark directory in the registry's layout whose problems are the toy task's words:
/// `math500` (500 problems, greedy) and `amc23` (40 problems, temperature 0.6 x 8 samples), every
/// answer 7. Distinct questions give distinct greedy responses.
fn write_toy_benchmarks(dir: &Path) -> PathBuf {
    let words = ["what", "is", "the", "answer", "?", "so"];
    let question = |i: usize| {
        let n = 1 + i % 4;
        (0..n)
            .map(|k| words[(i / 4 + k * 5) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let root = dir.join("bench");
    for (name, size) in [("math500", 500), ("amc23", 40)] {
        std::fs::create_dir_all(root.join(name)).unwrap();
        let lines: String = (0..size)
            .map(|i| serde_json::json!({"problem": question(i), "answer": "7"}).to_string() + "\n")
            .collect();
        std::fs::write(root.join(name).join("test.jsonl"), lines).unwrap();
    }
    root
}

/// The toy run's config: 6 steps, a checkpoint every 3, validation on both toy benchmarks
/// (first 4 problems, 2 new tokens, plain prompt) before training and every 3 steps.
fn write_config(dir: &Path, bench: &Path, run: &str) -> PathBuf {
    let mut cfg = toy::write_toy_task(dir, 4).unwrap();
    cfg.trainer.total_steps = 6;
    cfg.trainer.save_every = 3;
    cfg.trainer.plots = true;
    cfg.trainer.output_dir = dir.join(run).display().to_string();
    cfg.validation.every = 3;
    cfg.validation.before_train = true;
    cfg.validation.benchmarks = vec!["math500".into(), "amc23".into()];
    cfg.validation.data_dir = bench.display().to_string();
    cfg.validation.limit = 4;
    cfg.validation.max_new_tokens = 2;
    cfg.validation.prompt_template = oneshot_data::prompt::PromptTemplate::Plain;
    cfg.validation.generation_batch_size = 5;
    let path = dir.join(format!("{run}.toml"));
    std::fs::write(&path, cfg.to_toml_string().unwrap()).unwrap();
    path
}

/// Metrics without wall-clock fields.
fn deterministic(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|m| {
            m.into_iter()
                .filter(|(k, _)| !k.starts_with("time/") && !k.starts_with("throughput/"))
                .collect()
        })
        .collect()
}

fn weights(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let t =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let mut v: Vec<(String, Vec<u32>)> = t
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn f(row: &Row, key: &str) -> f64 {
    row.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("metrics row lacks {key}: {row:?}"))
}

/// The run directory: config, metrics rows and fields, checkpoints, plots, accuracy history.
fn check_run_dir(out: &Path, bench: &Path) -> Vec<Row> {
    let cfg = TrainConfig::load(Some(&out.join("config.toml")), &[]).unwrap();
    assert_eq!(cfg.trainer.total_steps, 6);
    assert_eq!(cfg.validation.benchmarks, vec!["math500", "amc23"]);
    assert_eq!(cfg.validation.data_dir, bench.display().to_string());
    assert_eq!(cfg.model.device, oneshot_model::DeviceSpec::Cpu);

    let rows = read_metrics(&out.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = rows.iter().map(|m| m["step"].as_u64().unwrap()).collect();
    assert_eq!(
        steps,
        vec![0, 1, 2, 3, 4, 5, 6],
        "one row per step, plus the validation before training"
    );
    for row in &rows[1..] {
        for key in [
            "reward/mean",
            "acc/mean",
            "response_length/mean",
            "actor/loss",
            "actor/grad_norm",
            "actor/lr",
            "time/step",
        ] {
            assert!(f(row, key).is_finite(), "{key} in {row:?}");
        }
        assert!((0.0..=1.0).contains(&f(row, "reward/mean")));
        assert!(f(row, "response_length/mean") >= 1.0 && f(row, "response_length/mean") <= 2.0);
    }
    for row in &rows {
        let step = row["step"].as_u64().unwrap();
        let has_val = row.contains_key("val/math500/acc");
        assert_eq!(
            has_val,
            step % 3 == 0,
            "validation at steps 0, 3, 6 only (step {step})"
        );
        if has_val {
            for key in [
                "val/math500/acc",
                "val/amc23/acc",
                "val/amc23/pass@2",
                "val/amc23/pass@8",
                "val/amc23/truncated",
            ] {
                assert!((0.0..=1.0).contains(&f(row, key)), "{key} in {row:?}");
            }
            assert!(
                !row.contains_key("val/math500/pass@2"),
                "greedy math500 has one sample per problem"
            );
            assert!(f(row, "val/amc23/pass@8") >= f(row, "val/amc23/acc"));
            assert!((1.0..=2.0).contains(&f(row, "val/math500/response_length")));
        }
    }
    // The model learns the toy task.
    assert!(
        f(&rows[6], "reward/mean") > f(&rows[1], "reward/mean"),
        "reward did not rise: {rows:?}"
    );

    let ckpts = out.join("checkpoints");
    let mut names: Vec<String> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["latest", "step_000003", "step_000006"]);
    assert_eq!(
        std::fs::read_to_string(ckpts.join("latest"))
            .unwrap()
            .trim(),
        "step_000006"
    );
    for step in ["step_000003", "step_000006"] {
        let c = ckpts.join(step);
        for file in [
            "actor/config.json",
            "actor/model.safetensors",
            "actor/tokenizer.json",
            "trainer_state.json",
            "config.toml",
        ] {
            assert!(c.join(file).is_file(), "{} lacks {file}", c.display());
        }
        assert!(c.join("actor_optim").is_dir());
        let model = oneshot_model::Model::from_dir(
            &c.join("actor"),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap_or_else(|e| panic!("{step}/actor does not load: {e:#}"));
        assert_eq!(model.dtype(), candle_core::DType::F32);
    }

    let svg = std::fs::read_to_string(out.join("training_curves.svg")).unwrap();
    assert!(
        svg.contains("reward/mean") && svg.contains("val/amc23/acc"),
        "SVG lacks its panels"
    );
    let png = std::fs::read(out.join("training_curves.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);

    let hist = oneshot_data::select::read_history(&out.join("rollout_accuracy.json")).unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(
        hist[&124].len(),
        6,
        "one accuracy per step (4 rows of the 1-row file per step)"
    );
    assert!(hist[&124].iter().all(|a| (0.0..=1.0).contains(a)));
    rows
}

#[test]
fn train_resume_eval_and_select_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let bench = write_toy_benchmarks(dir.path());

    // Uninterrupted.
    let full_cfg = write_config(dir.path(), &bench, "full");
    let stdout = succeed(&["train", "--config", s(&full_cfg)]);
    assert!(stdout.contains("trained 6 steps"), "{stdout}");
    let full = dir.path().join("full");
    let rows = check_run_dir(&full, &bench);

    // Interrupted after step 4 (the newest checkpoint is step 3), then resumed.
    let cfg = write_config(dir.path(), &bench, "resumed");
    let resumed = dir.path().join("resumed");
    let stdout = succeed(&["train", "--config", s(&cfg), "--stop-after", "4"]);
    assert!(stdout.contains("trained 4 steps"), "{stdout}");
    let again = oneshot(&["train", "--config", s(&cfg)]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--resume"),
        "restarting must ask for --resume"
    );
    let stdout = succeed(&["train", "--config", s(&cfg), "--resume"]);
    assert!(
        stdout.contains("trained 6 steps") && stdout.contains("step_000006"),
        "{stdout}"
    );
    let resumed_rows = check_run_dir(&resumed, &bench);
    assert_eq!(
        deterministic(rows.clone()),
        deterministic(resumed_rows),
        "metrics of the resumed run differ"
    );
    let last = |run: &Path| run.join("checkpoints/step_000006/actor");
    assert_eq!(
        weights(&last(&full)),
        weights(&last(&resumed)),
        "weights of the resumed run differ"
    );
    assert_ne!(
        weights(&last(&full)),
        weights(&dir.path().join("model")),
        "training did not move the weights"
    );

    // `oneshot eval` on the final checkpoint reproduces the final validation numbers.
    let eval_out = dir.path().join("eval");
    succeed(&[
        "eval",
        "--model",
        s(&last(&full)),
        "--benchmarks",
        "math500,amc23",
        "--data-dir",
        s(&bench),
        "--limit",
        "4",
        "--max-tokens",
        "2",
        "--template",
        "plain",
        "--out",
        s(&eval_out),
        "--threads",
        "2",
    ]);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(eval_out.join("summary.json")).unwrap())
            .unwrap();
    let final_row = &rows[6];
    let val: Vec<(&String, &Value)> = final_row
        .iter()
        .filter(|(k, _)| k.starts_with("val/"))
        .collect();
    eprintln!("final validation: {val:?}");
    for b in summary["benchmarks"].as_array().unwrap() {
        let name = b["benchmark"].as_str().unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let acc = b["score"].as_f64().unwrap() / 100.0;
        assert!(
            close(acc, f(final_row, &format!("val/{name}/acc"))),
            "{name}: eval {acc} vs validation {final_row:?}"
        );
        let len = b["mean_response_tokens"].as_f64().unwrap();
        assert!(
            close(len, f(final_row, &format!("val/{name}/response_length"))),
            "{name}: length {len}"
        );
        for p in b["pass_at_k"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["k"].as_u64().unwrap() > 1)
        {
            let key = format!("val/{name}/pass@{}", p["k"]);
            assert!(
                close(p["value"].as_f64().unwrap() / 100.0, f(final_row, &key)),
                "{key}"
            );
        }
    }

    // `oneshot select` on the run's accuracy history writes the repeated training file.
    let picked = dir.path().join("pi1.parquet");
    let stdout = succeed(&[
        "select",
        "--history",
        s(&full.join("rollout_accuracy.json")),
        "--pool",
        s(&dir.path().join("toy.parquet")),
        "--rank",
        "1",
        "--repeat",
        "8",
        "--out",
        s(&picked),
    ]);
    assert!(stdout.contains("pi_1 = index 124"), "{stdout}");
    let rows = oneshot_data::verl::read_verl_parquet(&picked).unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.index == 124 && r.ground_truth == "7"));
}

#[test]
fn bad_train_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bench = write_toy_benchmarks(dir.path());
    let cfg = write_config(dir.path(), &bench, "run");
    for (extra, expect) in [
        (vec!["--set", "optim.lrr=1"], "lrr"),
        (vec!["--device", "tpu"], "model.device"),
        (
            vec!["--set", "validation.benchmarks=[\"math501\"]"],
            "math501",
        ),
        (
            vec!["--set", "validation.data_dir=\"/nonexistent\""],
            "/nonexistent",
        ),
        (vec!["--resume"], "--resume: no checkpoint"),
    ] {
        let mut args = vec!["train", "--config", s(&cfg)];
        args.extend(extra.iter().copied());
        let out = oneshot(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{extra:?} should fail: {stderr}"
        );
        assert!(
            stderr.contains(expect),
            "{extra:?}: the error should mention {expect}: {stderr}"
        );
    }
}
