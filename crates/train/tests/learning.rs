//! The trainer learns the toy verifiable task: the mean reward rises from near chance to near 1.

use oneshot_train::metrics::read_metrics;
use oneshot_train::{toy, train, RunOptions};

#[test]
fn grpo_learns_the_toy_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = toy::write_toy_task(dir.path(), 3).unwrap();
    cfg.model.device = oneshot_test_device::name().parse().unwrap();
    let out = cfg.output_dir();
    let summary = train(cfg, &RunOptions::default()).unwrap();
    assert_eq!(summary.steps_done, 40);
    let metrics = read_metrics(&out.join("metrics.jsonl")).unwrap();
    let reward: Vec<f64> = metrics
        .iter()
        .map(|m| m["reward/mean"].as_f64().unwrap())
        .collect();
    eprintln!("reward curve: {reward:?}");
    let first = reward[..2].iter().sum::<f64>() / 2.0;
    let last = reward[reward.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        first < 0.2,
        "the random policy should start near chance, got {first}"
    );
    assert!(
        last > 0.8,
        "the policy should learn the task, final reward {last}"
    );
}
