//! A tiny pretraining run lowers the loss, is reproducible, and leaves a checkpoint that the
//! model loader and the lab evaluation read back.
use oneshot_lab::eval::{evaluate_greedy, EvalOptions, LabModel};
use oneshot_lab::pretrain::REPORT_FILE;
use oneshot_lab::splits::{benchmark, pool, SplitConfig};
use oneshot_lab::{pretrain, ModelShape, PretrainConfig, Progress};

fn tiny(steps: usize) -> PretrainConfig {
    PretrainConfig {
        steps,
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
    }
}

#[test]
fn tiny_run_lowers_the_loss_and_saves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base");
    let cfg = tiny(30);
    let (_, tok, report) = pretrain(&cfg, Some(&out), &Progress { bar: false }).unwrap();
    let (head, tail) = report.head_tail(5);
    assert!(
        tail < head - 1.0,
        "loss did not fall enough: {head:.3} -> {tail:.3}"
    );
    assert!(report.curve.iter().all(|p| p.loss.is_finite()));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        REPORT_FILE,
    ] {
        assert!(out.join(f).is_file(), "{f} missing from the checkpoint");
    }
    assert!(
        !dir.path().join(".base.tokenizer-files").exists(),
        "staging directory left behind"
    );

    let lab = LabModel::load(&out).unwrap();
    assert_eq!(lab.model.config.vocab_size, tok.vocab_size());
    let p = pool(
        &SplitConfig {
            size: 12,
            ..SplitConfig::pool()
        },
        0,
    )
    .unwrap();
    let b = benchmark(
        &SplitConfig {
            size: 6,
            ..SplitConfig::benchmark()
        },
        0,
        &p,
    )
    .unwrap();
    let (items, scores) = evaluate_greedy(
        &lab,
        &b,
        &EvalOptions {
            max_new_tokens: 12,
            batch_size: 4,
        },
    )
    .unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(scores.all.n, 6);
    // Greedy decoding is deterministic.
    let (again, _) = evaluate_greedy(
        &lab,
        &b,
        &EvalOptions {
            max_new_tokens: 12,
            batch_size: 3,
        },
    )
    .unwrap();
    let texts = |v: &[oneshot_lab::eval::Evaluated]| {
        v.iter().map(|e| e.response.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&items), texts(&again));
}

#[test]
fn same_seed_same_loss_curve() {
    let a = pretrain(&tiny(4), None, &Progress { bar: false })
        .unwrap()
        .2;
    let b = pretrain(&tiny(4), None, &Progress { bar: false })
        .unwrap()
        .2;
    assert_eq!(a.curve, b.curve);
    let c = pretrain(
        &PretrainConfig { seed: 9, ..tiny(4) },
        None,
        &Progress { bar: false },
    )
    .unwrap()
    .2;
    assert_ne!(a.curve, c.curve);
}

#[test]
fn bad_config_is_named() {
    let e = pretrain(
        &PretrainConfig {
            warmup_steps: 50,
            ..tiny(10)
        },
        None,
        &Progress { bar: false },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("warmup_steps"), "{e}");
}

#[test]
fn refuses_a_non_checkpoint_output_directory_before_training() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let e = pretrain(&tiny(3), Some(dir.path()), &Progress { bar: false })
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a checkpoint"), "{e}");
    assert!(dir.path().join("notes.txt").is_file());
}
