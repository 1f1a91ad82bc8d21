//! LoRA runs: the KL reference is the policy's own base (no second set of weights), the
//! optimiser holds the adapters only, checkpoints hold adapters (PEFT layout) and optimiser
//! state only, and an interrupted + resumed run ends bit-identical to an uninterrupted one.

mod common;

use std::path::Path;

use common::{deterministic, sorted_tensors};

use oneshot_train::checkpoint::{ACTOR_ADAPTER_DIR, ACTOR_DIR};
use oneshot_train::metrics::read_metrics;
use oneshot_train::{toy, train, RunOptions, TrainConfig, Trainer};

fn config(dir: &Path, name: &str) -> TrainConfig {
    let mut cfg = toy::write_toy_task(dir, 5).unwrap();
    cfg.trainer.total_steps = 4;
    cfg.trainer.save_every = 2;
    cfg.algorithm.use_kl_loss = true;
    cfg.algorithm.kl_loss_coef = 0.01;
    // Several mini-batches: old log-probs, and several dropout draws per step.
    cfg.trainer.mini_batch_size = 2;
    cfg.lora.enabled = true;
    cfg.lora.r = 4;
    cfg.lora.alpha = 8.0;
    cfg.lora.dropout = 0.1;
    cfg.optim.lr = 1e-3;
    cfg.trainer.output_dir = dir.join(name).display().to_string();
    cfg
}

fn adapters(dir: &Path) -> Vec<(String, Vec<f32>)> {
    sorted_tensors(&dir.join("adapter_model.safetensors"))
}

#[test]
fn a_lora_run_with_kl_keeps_one_set_of_weights() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "run");
    assert!(cfg.needs_reference());
    let t = Trainer::new(cfg, None).unwrap();
    let reference = t.reference.as_ref().expect("KL on: a reference");
    assert!(reference.lora().is_none(), "the reference has adapters");
    let base = t.policy.model.base_vars();
    let refs = reference.vars();
    assert_eq!(base.len(), refs.len());
    for ((name, a), (_, b)) in base.iter().zip(&refs) {
        assert_eq!(
            a.as_tensor().id(),
            b.as_tensor().id(),
            "{name}: the reference holds its own copy"
        );
    }
    // The optimiser steps the adapters only: 2 matrices per projection, 7 per layer.
    let layers = t.policy.model.config.num_hidden_layers;
    assert_eq!(t.opt.param_names().count(), 2 * 7 * layers);
    assert!(t.opt.param_names().all(|n| n.contains(".lora_")));
    let adapter_scalars: usize = t
        .policy
        .model
        .vars()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    assert_eq!(t.opt.num_params(), adapter_scalars);
}

#[test]
fn lora_checkpoints_hold_adapters_and_resume_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let full = train(config(dir.path(), "full"), &RunOptions::default()).unwrap();
    assert_eq!(full.steps_done, 4);
    let last = full.last_checkpoint.clone().unwrap();
    assert!(last
        .join(ACTOR_ADAPTER_DIR)
        .join("adapter_config.json")
        .is_file());
    assert!(
        !last.join(ACTOR_DIR).exists(),
        "a LoRA checkpoint saved the base"
    );

    let cfg = config(dir.path(), "resumed");
    let part = train(
        cfg.clone(),
        &RunOptions {
            stop_after: Some(3),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(part.steps_done, 3);
    let resumed = train(
        cfg,
        &RunOptions {
            resume: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(resumed.steps_done, 4);

    let a = adapters(&last.join(ACTOR_ADAPTER_DIR));
    let b = adapters(&resumed.last_checkpoint.unwrap().join(ACTOR_ADAPTER_DIR));
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "adapter {na} differs after resuming"
        );
    }
    // The adapters moved: B started at zero.
    assert!(a
        .iter()
        .any(|(n, v)| n.contains("lora_B") && v.iter().any(|&x| x != 0.0)));
    let ma = deterministic(read_metrics(&full.output_dir.join("metrics.jsonl")).unwrap());
    let mb = deterministic(read_metrics(&resumed.output_dir.join("metrics.jsonl")).unwrap());
    assert_eq!(ma.len(), 4);
    assert_eq!(ma, mb, "metrics of the resumed run differ");
}
