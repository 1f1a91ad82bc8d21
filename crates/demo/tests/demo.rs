//! The demo end to end on a tiny model pretrained in the test, with the tiny budget: every
//! output file is there and consistent (summary keys and ranges, the other-families block,
//! curve points with every rate, the saturation step against the metrics file, report
//! sections, PNGs that decode, a history that ranks to the reported pi_1), and a second run
//! gives the same numbers.
use oneshot_data::select::{rank_by_variance, read_history};
use oneshot_demo::{files, run_demo, Budget, BudgetName, DemoConfig};
use oneshot_lab::{pretrain, ModelShape, PretrainConfig, Progress};
use serde_json::Value;
use std::path::Path;

fn tiny_base(dir: &Path) {
    let cfg = PretrainConfig {
        steps: 25,
        batch_size: 8,
        lr: 1e-2,
        warmup_steps: 3,
        vocab_size: 320,
        tokenizer_docs: 300,
        max_seq_len: 160,
        shape: ModelShape::tiny(),
        log_every: 0,
        save_every: 0,
        ..PretrainConfig::default()
    };
    pretrain(&cfg, Some(dir), &Progress { bar: false }).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    // Something was drawn: not a single flat colour.
    let px = &buf[..info.buffer_size()];
    assert!(
        px.chunks(3).any(|p| p != &px[..3]),
        "{} is blank",
        path.display()
    );
    (info.width, info.height)
}

/// Equal up to JSON's decimal round trip.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// The summary without wall-clock fields, for comparing two runs.
fn numbers(mut v: Value) -> Value {
    let m = v.as_object_mut().unwrap();
    m.remove("wall_seconds");
    m.remove("stage_seconds");
    v
}

#[test]
fn tiny_demo_writes_every_output_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    tiny_base(&base);
    // Saturated from the first step (any accuracy reaches 0), so the post-saturation path
    // runs; pass@2 on the first 3 curve problems, so the sampled path runs.
    let budget = Budget {
        saturation: 0.0,
        pass_k: 2,
        pass_limit: 3,
        ..Budget::tiny()
    };
    let cfg = DemoConfig {
        model: base.clone(),
        out: dir.path().join("demo"),
        seed: 3,
        data_seed: None,
        budget: budget.clone(),
        progress: false,
    };
    let outcome = run_demo(&cfg).unwrap();
    let out = &cfg.out;

    // summary.json: the required keys, fractions in [0, 1], consistent with the outcome.
    let s = read_json(&out.join(files::SUMMARY));
    for key in [
        "base_accuracy",
        "one_shot_accuracy",
        "base_lenient_accuracy",
        "one_shot_lenient_accuracy",
        "base_boxed_rate",
        "one_shot_boxed_rate",
    ] {
        let x = s[key]
            .as_f64()
            .unwrap_or_else(|| panic!("summary.{key} missing"));
        assert!((0.0..=1.0).contains(&x), "summary.{key} = {x}");
    }
    assert!(
        s["base_lenient_accuracy"].as_f64().unwrap() >= s["base_accuracy"].as_f64().unwrap(),
        "lenient counts every strict hit"
    );
    assert_eq!(
        s["one_shot_accuracy"].as_f64().unwrap(),
        outcome.one_shot.all.strict
    );
    assert_eq!(
        s["eval_problems"].as_u64().unwrap(),
        budget.eval_limit as u64
    );
    let wall = s["wall_seconds"].as_f64().unwrap();
    assert!(wall > 0.0 && wall.is_finite());
    let pi1 = s["pi1_index"].as_i64().unwrap();

    // The selection history: one entry per epoch for every example of the selection pool,
    // and ranking it gives the reported pi_1.
    let hist = read_history(&out.join(files::SELECTION_DIR).join(files::HISTORY)).unwrap();
    assert_eq!(hist.len(), budget.selection_pool);
    assert!(hist
        .values()
        .all(|a| a.len() == budget.selection_epochs && a.iter().all(|x| (0.0..=1.0).contains(x))));
    let ranking = rank_by_variance(&hist);
    assert_eq!(ranking[0].index, pi1);
    assert_eq!(
        s["pi1"]["history"].as_array().unwrap().len(),
        budget.selection_epochs
    );

    // The families other than pi_1's: pi_1's family left out, the counts add up, and the
    // rates are those of the judged responses outside it.
    let other = &s["other_families"];
    let family = s["pi1"]["family"].as_str().unwrap();
    assert_eq!(other["excluded"].as_str(), Some(family));
    for (stage, file) in [
        ("base", files::BASE_RESPONSES),
        ("one_shot", files::ONE_SHOT_RESPONSES),
    ] {
        let own = s[stage]["by_family"][family]["n"].as_u64().unwrap_or(0);
        assert_eq!(
            other[stage]["n"].as_u64().unwrap() + own,
            s[stage]["all"]["n"].as_u64().unwrap(),
            "{stage}"
        );
        let responses: Vec<Value> = std::fs::read_to_string(out.join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &Value| r["family"].as_str() != Some(family))
            .collect();
        assert_eq!(responses.len() as u64, other[stage]["n"].as_u64().unwrap());
        for rate in ["strict", "lenient", "direct", "checked"] {
            let hits = responses
                .iter()
                .filter(|r| r["judged"][rate].as_bool().unwrap())
                .count();
            let want = if responses.is_empty() {
                0.0
            } else {
                hits as f64 / responses.len() as f64
            };
            let got = other[stage][rate].as_f64().unwrap();
            assert!(close(got, want), "{stage} {rate}: {got} vs {want}");
        }
        for r in [
            &other[stage],
            &s[stage]["all"],
            &s[stage]["by_family"][family],
        ] {
            for rate in ["direct", "slip", "checked"] {
                assert!(
                    (0.0..=1.0).contains(&r[rate].as_f64().unwrap()),
                    "{rate} in {r}"
                );
            }
        }
    }
    let gain =
        other["one_shot"]["strict"].as_f64().unwrap() - other["base"]["strict"].as_f64().unwrap();
    assert!(close(other["strict_gain"].as_f64().unwrap(), gain));

    // pi_1's train metrics at every step, as the trainer wrote them to metrics.jsonl.
    let metrics: Vec<Value> =
        std::fs::read_to_string(out.join(files::ONE_SHOT_DIR).join(files::METRICS))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(metrics.len(), budget.one_shot_steps);
    let train = s["train_curve"].as_array().unwrap();
    assert_eq!(train.len(), budget.one_shot_steps);
    for (p, m) in train.iter().zip(&metrics) {
        assert_eq!(p["step"], m["step"]);
        assert_eq!(p["pi1_accuracy"], m["acc/mean"]);
        assert_eq!(p["response_length"], m["response_length/mean"]);
        assert_eq!(
            p["entropy"],
            m.get("actor/entropy").cloned().unwrap_or(Value::Null)
        );
        assert!(p["response_length"].as_f64().unwrap() > 0.0);
    }
    // Saturation: the first step of the metrics file at the threshold, with a held-out point
    // there besides those every curve_every steps and at the end.
    let first_saturated = metrics
        .iter()
        .find(|m| m["acc/mean"].as_f64().unwrap() >= budget.saturation)
        .map(|m| m["step"].as_u64().unwrap());
    assert_eq!(first_saturated, Some(1));
    assert_eq!(s["saturation_step"].as_u64(), first_saturated);
    let curve = s["test_curve"].as_array().unwrap();
    let steps: Vec<u64> = curve.iter().map(|p| p["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![0, 1, 2, 4]);
    for p in curve {
        for rate in ["strict", "lenient", "boxed", "direct", "slip", "checked"] {
            for r in [p, &p["other_families"]] {
                let x = r[rate]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{rate} missing in {r}"));
                assert!((0.0..=1.0).contains(&x), "{rate} = {x}");
            }
        }
        assert_eq!(p["n"].as_u64(), Some(budget.curve_limit as u64));
        let k = &p["pass_at_k"];
        assert_eq!(
            (k["k"].as_u64(), k["problems"].as_u64()),
            (Some(2), Some(3))
        );
        let (pass, mean) = (k["pass"].as_f64().unwrap(), k["mean"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&pass) && mean <= pass, "{k}");
    }
    // The held-out points are in the metrics file at their steps.
    for p in &curve[1..] {
        let m = &metrics[p["step"].as_u64().unwrap() as usize - 1];
        assert_eq!(m["val/heldout_strict/acc"], p["strict"]);
        assert_eq!(
            m["val/heldout_other/lenient"],
            p["other_families"]["lenient"]
        );
        assert_eq!(m["val/heldout/slip"], p["slip"]);
        assert_eq!(m["val/heldout_lenient/pass@2"], p["pass_at_k"]["pass"]);
    }
    assert_eq!(
        metrics
            .iter()
            .filter(|m| m.get("val/heldout_strict/acc").is_some())
            .count(),
        3
    );
    let post = &s["post_saturation"];
    assert_eq!(post["step"].as_u64(), Some(1));
    assert_eq!(post["at"]["strict"], curve[1]["strict"]);
    let after: Vec<u64> = post["after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["step"].as_u64().unwrap())
        .collect();
    assert_eq!(after, vec![2, 4]);
    let rise = &post["rise"];
    assert_eq!(rise["step"].as_u64(), Some(3));
    let f = |v: &Value| v.as_f64().unwrap();
    assert!(close(
        f(&rise["lenient"]),
        f(&curve[3]["lenient"]) - f(&curve[1]["lenient"])
    ));
    assert!(close(
        f(&rise["other_strict"]),
        f(&curve[3]["other_families"]["strict"]) - f(&curve[1]["other_families"]["strict"])
    ));
    // The 1-shot training file is pi_1 repeated to the batch.
    let rows =
        oneshot_data::verl::read_verl_parquet(&out.join(files::ONE_SHOT_DIR).join("pi1.parquet"))
            .unwrap();
    assert_eq!(rows.len(), budget.one_shot_batch);
    assert!(rows.iter().all(|r| r.index == pi1));

    // Report sections and figures.
    let report = std::fs::read_to_string(out.join(files::REPORT)).unwrap();
    for section in [
        "## Result\n\n**Families other than pi_1's**",
        "| **other families** |",
        "pass@2",
        "(saturation) at step 1",
        "Over the 3 steps after it (2 held-out points, to step 4)",
        "## Held-out accuracy by family",
        "## The chosen example pi_1",
        "## Training and test curves",
        "## Time",
        "| **all** |",
    ] {
        assert!(
            report.contains(section),
            "report.md lacks `{section}`:\n{report}"
        );
    }
    assert!(report.contains(&format!("pi_1 = pool example {pi1}")));
    assert_eq!(
        png_size(&out.join(files::CURVES_PNG)),
        oneshot_demo::plots::CURVES_SIZE
    );
    assert_eq!(png_size(&out.join(files::FAMILIES_PNG)), (1000, 520));
    assert!(out
        .join(files::ONE_SHOT_DIR)
        .join("training_curves.png")
        .is_file());
    // The trained model is saved and loads.
    let trained =
        oneshot_lab::eval::LabModel::load(&out.join(files::ONE_SHOT_DIR).join("model")).unwrap();
    assert_eq!(
        trained.model.config.vocab_size,
        oneshot_lab::eval::LabModel::load(&base)
            .unwrap()
            .model
            .config
            .vocab_size
    );
    let responses = std::fs::read_to_string(out.join(files::ONE_SHOT_RESPONSES)).unwrap();
    assert_eq!(responses.lines().count(), budget.eval_limit);

    // Same seed, same numbers.
    let again = DemoConfig {
        out: dir.path().join("demo2"),
        ..cfg
    };
    run_demo(&again).unwrap();
    assert_eq!(
        numbers(read_json(&again.out.join(files::SUMMARY))),
        numbers(s)
    );
}

#[test]
fn bad_budgets_and_missing_models_are_clear_errors() {
    let err = <BudgetName as clap::ValueEnum>::from_str("huge", false).unwrap_err();
    assert!(err.contains("huge"), "{err}");
    let err = serde_json::from_str::<BudgetName>("\"huge\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("huge") && err.contains("quick"), "{err}");
    let b = Budget {
        selection_batch: 3,
        ..Budget::tiny()
    };
    let err = b.validate().unwrap_err().to_string();
    assert!(err.contains("selection_batch"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = DemoConfig {
        model: dir.path().join("nope"),
        out: dir.path().join("out"),
        seed: 0,
        data_seed: Some(0),
        budget: Budget::tiny(),
        progress: false,
    };
    let err = format!("{:#}", run_demo(&cfg).unwrap_err());
    assert!(err.contains("nope"), "{err}");
}
