//! The algorithm options run end to end on the toy task and still learn; plots, TensorBoard
//! files, validation and the rollout accuracy history are written.

use oneshot_train::metrics::read_metrics;
use oneshot_train::{toy, train, RunOptions, TrainConfig};

fn run(cfg: TrainConfig) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = cfg.output_dir();
    train(cfg, &RunOptions::default()).unwrap();
    read_metrics(&out.join("metrics.jsonl")).unwrap()
}

fn final_reward(m: &[serde_json::Map<String, serde_json::Value>]) -> f64 {
    let r: Vec<f64> = m
        .iter()
        .filter_map(|m| m.get("reward/mean")?.as_f64())
        .collect();
    r[r.len() - 3..].iter().sum::<f64>() / 3.0
}

#[test]
fn every_estimator_learns() {
    for (est, extra) in [
        (
            "dr_grpo",
            vec![("algorithm.loss_agg_mode", "\"seq-mean-token-sum-norm\"")],
        ),
        // bf16 products (model.matmul) in rollouts, log-probs and the update.
        (
            "rloo",
            vec![
                ("algorithm.loss_agg_mode", "\"seq-mean-token-mean\""),
                ("model.matmul", "\"bf16\""),
            ],
        ),
        (
            "reinforce_plus_plus",
            vec![
                ("algorithm.kl_in_reward", "true"),
                ("algorithm.kl_reward_coef", "0.01"),
            ],
        ),
        (
            "gae",
            vec![("algorithm.critic_lr", "1e-2"), ("trainer.ppo_epochs", "2")],
        ),
        (
            "grpo",
            vec![
                ("algorithm.loss_agg_mode", "\"micro-batch-token-mean\""),
                ("trainer.micro_batch_rows", "6"),
                ("algorithm.drop_zero_adv_groups", "true"),
                ("algorithm.clip_ratio_high", "0.28"),
                ("algorithm.clip_ratio_c", "3.0"),
            ],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = toy::write_toy_task(dir.path(), 3).unwrap();
        let mut text = cfg.to_toml_string().unwrap();
        text.push('\n');
        let mut sets = vec![format!("algorithm.adv_estimator=\"{est}\"")];
        sets.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        let path = dir.path().join("cfg.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = TrainConfig::load(Some(&path), &sets).unwrap();
        let m = run(cfg);
        let r = final_reward(&m);
        assert!(r > 0.7, "{est} {extra:?}: final reward {r}");
        if est == "gae" {
            assert!(m
                .iter()
                .all(|m| m["critic/vf_loss"].as_f64().unwrap().is_finite()));
        }
        if est == "grpo" {
            // Once every response is right, all groups are dropped and the update is skipped.
            assert!(
                m.iter().any(|m| m["actor/skipped"] == true),
                "drop_zero_adv_groups never skipped"
            );
        }
    }
}

#[test]
fn validation_plots_tensorboard_and_history_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = toy::write_toy_task(dir.path(), 3).unwrap();
    let bench = dir.path().join("toybench.jsonl");
    std::fs::write(&bench, "{\"problem\": \"what is the answer ?\", \"answer\": \"7\"}\n{\"problem\": \"what is ?\", \"answer\": \"7\"}\n").unwrap();
    cfg.validation.benchmarks = vec![bench.display().to_string()];
    cfg.validation.every = 10;
    cfg.validation.before_train = true;
    cfg.validation.prompt_template = oneshot_data::prompt::PromptTemplate::Plain;
    cfg.validation.max_new_tokens = 1;
    cfg.trainer.total_steps = 20;
    cfg.trainer.save_every = 10;
    cfg.trainer.keep_checkpoints = 1;
    cfg.trainer.plots = true;
    cfg.trainer.tensorboard = true;
    let out = cfg.output_dir();
    let m = run(cfg);
    let val: Vec<(u64, f64)> = m
        .iter()
        .filter_map(|m| Some((m["step"].as_u64()?, m.get("val/toybench/acc")?.as_f64()?)))
        .collect();
    assert_eq!(val.iter().map(|v| v.0).collect::<Vec<_>>(), vec![0, 10, 20]);
    assert!(
        val[2].1 > val[0].1,
        "greedy validation accuracy should rise: {val:?}"
    );

    let ckpts: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        ckpts.iter().any(|n| n == "step_000020") && !ckpts.iter().any(|n| n == "step_000010"),
        "{ckpts:?}"
    );
    // The resolved config is saved with the run and reloads to the same values.
    let saved = TrainConfig::load(Some(&out.join("config.toml")), &[]).unwrap();
    assert_eq!(saved.trainer.total_steps, 20);

    let svg = std::fs::read_to_string(out.join("training_curves.svg")).unwrap();
    assert!(
        svg.contains("reward/mean") && svg.contains("val/toybench/acc"),
        "SVG lacks its captions"
    );
    let png = std::fs::File::open(out.join("training_curves.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    // Text is drawn: the caption band of the first panel (top 24 rows, away from the curve)
    // holds dark anti-aliased glyph pixels.
    let w = info.width as usize;
    let dark = (0..24)
        .flat_map(|y| (0..300).map(move |x| (y * w + x) * 3))
        .filter(|&i| px[i] < 128 && px[i + 1] < 128 && px[i + 2] < 128)
        .count();
    assert!(
        dark > 50,
        "no caption text rendered in the PNG ({dark} dark pixels)"
    );

    let tb: Vec<_> = std::fs::read_dir(out.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tb.len(), 1);
    let bytes = std::fs::read(&tb[0]).unwrap();
    // 21 records: the version record and one per step.
    let (mut pos, mut records) = (0usize, 0usize);
    while pos < bytes.len() {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
        assert_eq!(
            u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap()),
            oneshot_train::tensorboard::masked_crc(&bytes[pos + 12..pos + 12 + len])
        );
        pos += 16 + len;
        records += 1;
    }
    assert_eq!(records, 21);

    let hist = oneshot_data::select::read_history(&out.join("rollout_accuracy.json")).unwrap();
    assert_eq!(hist[&124].len(), 20);
}

#[test]
fn a_step_keeps_its_rollouts_with_the_checker_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = toy::write_toy_task(dir.path(), 3).unwrap();
    cfg.trainer.output_dir = dir.path().join("run").display().to_string();
    let (batch, n) = (cfg.data.train_batch_size, cfg.rollout.n);
    let mut t = oneshot_train::Trainer::new(cfg, None).unwrap();
    assert!(t.last_rollouts.is_empty());
    let m = t.step().unwrap();
    assert_eq!(t.last_rollouts.len(), batch * n);
    let right = t.last_rollouts.iter().filter(|r| r.correct).count();
    assert_eq!(right as f64 / (batch * n) as f64, m.reward.accuracy);
    for r in &t.last_rollouts {
        let prompt = t.prompts.iter().find(|p| p.index == r.index).unwrap();
        assert_eq!(t.checker.check(&r.text, &prompt.label).correct, r.correct);
    }
    // Each group of n shares its prompt.
    for group in t.last_rollouts.chunks(n) {
        assert!(group.iter().all(|r| r.index == group[0].index));
    }
}
