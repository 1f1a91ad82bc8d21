//! The demo end to end on a tiny model pretrained in the test, with the tiny budget: every
//! output file is there and consistent (summary keys and ranges, report sections, PNGs that
//! decode, a history that ranks to the reported pi_1), and a second run gives the same numbers.
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
    let budget = Budget::tiny();
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

    // Curves: pi_1's accuracy at every step; test points at 0, every curve_every steps and the end.
    let train = s["train_curve"].as_array().unwrap();
    assert_eq!(train.len(), budget.one_shot_steps);
    assert!(train
        .iter()
        .all(|p| (0.0..=1.0).contains(&p["pi1_accuracy"].as_f64().unwrap())));
    let steps: Vec<u64> = s["test_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![0, 2, 4]);
    let metrics =
        std::fs::read_to_string(out.join(files::ONE_SHOT_DIR).join(files::METRICS)).unwrap();
    assert_eq!(metrics.lines().count(), budget.one_shot_steps);
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.contains("val/heldout_strict/acc"))
            .count(),
        2
    );
    // The 1-shot training file is pi_1 repeated to the batch.
    let rows =
        oneshot_data::verl::read_verl_parquet(&out.join(files::ONE_SHOT_DIR).join("pi1.parquet"))
            .unwrap();
    assert_eq!(rows.len(), budget.one_shot_batch);
    assert!(rows.iter().all(|r| r.index == pi1));

    // Report sections and figures.
    let report = std::fs::read_to_string(out.join(files::REPORT)).unwrap();
    for section in [
        "## Result",
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
    assert_eq!(png_size(&out.join(files::CURVES_PNG)), (900, 520));
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
