//! Resuming: a run interrupted after k steps and resumed ends bit-identical (weights and
//! metrics) to an uninterrupted run; a NaN loss stops the run with the last good checkpoint
//! intact and loadable.

mod common;

use std::path::Path;

use common::{deterministic, sorted_tensors};

use oneshot_train::checkpoint::{self, ACTOR_DIR};
use oneshot_train::metrics::read_metrics;
use oneshot_train::{toy, train, RunOptions, TrainConfig};

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    sorted_tensors(&dir.join("model.safetensors"))
}

fn config(dir: &Path, name: &str) -> TrainConfig {
    let mut cfg = toy::write_toy_task(dir, 5).unwrap();
    // The device named by ONESHOT_TEST_DEVICE (default cpu): bit-exact resume on each device.
    cfg.model.device = oneshot_test_device::name().parse().unwrap();
    cfg.trainer.total_steps = 6;
    cfg.trainer.save_every = 2;
    // Exercise the parts a resume must carry: KL to the reference, entropy, HAPO history,
    // and several mini-batches per step (old log-probs).
    cfg.algorithm.use_kl_loss = true;
    cfg.algorithm.kl_loss_coef = 0.01;
    cfg.algorithm.entropy_coef = 0.001;
    cfg.reward.length_reward = true;
    cfg.reward.length_weight = 0.5;
    cfg.trainer.mini_batch_size = 2;
    cfg.optim.weight_decay = 0.01;
    cfg.trainer.output_dir = dir.join(name).display().to_string();
    cfg
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let full_cfg = config(dir.path(), "full");
    let full = train(full_cfg.clone(), &RunOptions::default()).unwrap();
    assert_eq!(full.steps_done, 6);

    let cfg = config(dir.path(), "resumed");
    // "Interrupted" after step 3: the newest checkpoint is step 2, step 3's metrics line is
    // written but no checkpoint covers it.
    let part = train(
        cfg.clone(),
        &RunOptions {
            resume: false,
            stop_after: Some(3),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(part.steps_done, 3);
    let err = format!(
        "{:#}",
        train(cfg.clone(), &RunOptions::default()).unwrap_err()
    );
    assert!(
        err.contains("--resume"),
        "restarting without --resume must refuse: {err}"
    );
    let resumed = train(
        cfg,
        &RunOptions {
            resume: true,
            stop_after: None,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(resumed.steps_done, 6);

    let a = weights(&full.last_checkpoint.unwrap().join(ACTOR_DIR));
    let b = weights(&resumed.last_checkpoint.unwrap().join(ACTOR_DIR));
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "weights of {na} differ"
        );
    }
    let ma = deterministic(read_metrics(&full.output_dir.join("metrics.jsonl")).unwrap());
    let mb = deterministic(read_metrics(&resumed.output_dir.join("metrics.jsonl")).unwrap());
    assert_eq!(ma.len(), 6);
    assert_eq!(ma, mb, "metrics of the resumed run differ");
    // The weights moved (the comparison is not between two untouched models).
    let init = weights(&dir.path().join("model"));
    assert!(init.iter().zip(&a).any(|((_, x), (_, y))| x != y));
    // The accuracy history: every step of 4 rows over a 1-row file closes one entry.
    let hist =
        oneshot_data::select::read_history(&full.output_dir.join("rollout_accuracy.json")).unwrap();
    assert_eq!(hist[&124].len(), 6);
    assert_eq!(
        hist,
        oneshot_data::select::read_history(&resumed.output_dir.join("rollout_accuracy.json"))
            .unwrap()
    );
}

#[test]
fn nan_loss_stops_with_the_last_good_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = toy::write_toy_task(dir.path(), 9).unwrap();
    cfg.trainer.total_steps = 10;
    cfg.trainer.save_every = 2;
    cfg.debug.nan_loss_at_step = 5;
    let out = cfg.output_dir();
    let err = format!(
        "{:#}",
        train(cfg.clone(), &RunOptions::default()).unwrap_err()
    );
    assert!(
        err.contains("non-finite") && err.contains("step 5"),
        "{err}"
    );
    assert!(
        err.contains("step_000004"),
        "the message names the last good checkpoint: {err}"
    );
    let last = checkpoint::latest(&out).unwrap().unwrap();
    assert!(last.ends_with("step_000004"));
    assert!(!checkpoint::checkpoints_dir(&out)
        .join("step_000005")
        .exists());
    // Loadable, and finite: resuming from it with the fault removed finishes the run.
    let w = weights(&last.join(ACTOR_DIR));
    assert!(w.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
    assert_eq!(checkpoint::read_state(&last).unwrap().step, 4);
    let metrics = read_metrics(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 4, "no metrics line for the failed step");
    cfg.debug.nan_loss_at_step = 0;
    let done = train(
        cfg,
        &RunOptions {
            resume: true,
            stop_after: None,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(done.steps_done, 10);
}
