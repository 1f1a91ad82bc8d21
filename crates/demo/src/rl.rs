//! RL runs of the demo: a trainer config for a lab model (the paper's recipe with the budget's
//! sizes), run by the trainer's own loop, which lets the caller add held-out points between
//! steps.
use crate::budget::Budget;
use anyhow::{Context, Result};
use oneshot_train::{train_with, RunOptions, StepMetrics, TrainConfig, Trainer};
use std::path::{Path, PathBuf};

/// What differs between the demo's RL runs (and the ablations of `lab reproduce`).
#[derive(Debug, Clone)]
pub struct RlSpec {
    /// verl parquet of the training rows.
    pub train_file: PathBuf,
    /// Rows per step and rollouts per row (each row is its own advantage group).
    pub batch: usize,
    pub n: usize,
    pub steps: usize,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Reward of a correct last `\boxed{}` (0 for the no-reward ablations).
    pub correct_value: f64,
    /// Reward of having a `\boxed{}` at all (the format-only ablation).
    pub format_value: f64,
    pub entropy_coef: f64,
    /// Draw the trainer's progress.
    pub progress: bool,
}

impl RlSpec {
    /// A run with the paper's reward and the budget's entropy coefficient.
    pub fn new(
        train_file: PathBuf,
        batch: usize,
        n: usize,
        steps: usize,
        seed: u64,
        out_dir: PathBuf,
        budget: &Budget,
    ) -> Self {
        Self {
            train_file,
            batch,
            n,
            steps,
            seed,
            out_dir,
            correct_value: 1.0,
            format_value: 0.0,
            entropy_coef: budget.entropy_coef,
            progress: false,
        }
    }
}

/// The trainer config of a lab run: the paper's GRPO recipe (token-mean loss, k3 KL, entropy
/// bonus, AdamW with clip 1.0, one update per rollout batch) with the budget's sizes, f32 on
/// the CPU, and none of the trainer's own validation (the demo evaluates with the lab metric
/// itself).
pub fn train_config(model: &Path, spec: &RlSpec, budget: &Budget) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::default();
    cfg.model.path = model.display().to_string();
    cfg.model.dtype = oneshot_model::WeightDtype::F32;
    cfg.data.train_files = vec![spec.train_file.display().to_string()];
    cfg.data.train_batch_size = spec.batch;
    cfg.data.max_prompt_length = 256;
    cfg.rollout.n = spec.n;
    cfg.rollout.temperature = budget.temperature;
    cfg.rollout.max_response_length = budget.max_new_tokens;
    cfg.reward.correct_value = spec.correct_value;
    cfg.reward.format_value = spec.format_value;
    cfg.algorithm.entropy_coef = spec.entropy_coef;
    cfg.algorithm.kl_loss_coef = budget.kl_coef;
    cfg.algorithm.use_kl_loss = budget.kl_coef != 0.0;
    cfg.optim.lr = budget.lr;
    if let Some(r) = budget.lora_rank {
        cfg.lora.enabled = true;
        cfg.lora.r = r;
        cfg.lora.alpha = 2.0 * r as f64;
        cfg.optim.lr = budget.lr * crate::budget::LORA_LR_FACTOR;
    }
    cfg.trainer.total_steps = spec.steps;
    cfg.trainer.mini_batch_size = spec.batch;
    cfg.trainer.seed = spec.seed;
    cfg.trainer.save_every = 0;
    cfg.trainer.output_dir = spec.out_dir.display().to_string();
    cfg.trainer.plots = true;
    cfg.trainer.progress_bar = spec.progress;
    cfg.validation.every = 0;
    cfg.validate().context("the demo's trainer config")?;
    Ok(cfg)
}

/// Runs a lab RL stage through the trainer's loop (no checkpoints: the trained model is handed
/// on in memory). `after_step` may add held-out points to a step's metrics. Returns the
/// trainer (its policy is the trained model) and every step's metrics.
pub fn run_rl(
    cfg: TrainConfig,
    label: &str,
    mut after_step: impl FnMut(&Trainer, &mut StepMetrics) -> Result<()>,
) -> Result<(Trainer, Vec<StepMetrics>)> {
    let opts = RunOptions {
        checkpoints: false,
        label: label.to_string(),
        ..RunOptions::default()
    };
    let mut lines = Vec::with_capacity(cfg.trainer.total_steps);
    let (trainer, _) = train_with(cfg, &opts, |t, m| {
        after_step(t, m)?;
        lines.push(m.clone());
        Ok(())
    })
    .with_context(|| format!("RL stage `{label}`"))?;
    Ok((trainer, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lora_budget_trains_adapters_at_a_larger_lr() {
        let dir = tempfile::tempdir().unwrap();
        let full = Budget::tiny();
        let spec = RlSpec::new(
            dir.path().join("t.parquet"),
            2,
            2,
            1,
            0,
            dir.path().to_path_buf(),
            &full,
        );
        let plain = train_config(dir.path(), &spec, &full).unwrap();
        assert!(!plain.lora.enabled);
        let lora = Budget {
            lora_rank: Some(8),
            ..Budget::tiny()
        };
        let cfg = train_config(dir.path(), &spec, &lora).unwrap();
        assert!(cfg.lora.enabled);
        assert_eq!((cfg.lora.r, cfg.lora.alpha), (8, 16.0));
        assert_eq!(cfg.optim.lr, full.lr * crate::budget::LORA_LR_FACTOR);
        let zero = Budget {
            lora_rank: Some(0),
            ..Budget::tiny()
        };
        assert!(zero.validate().unwrap_err().to_string().contains("--lora"));
    }
}
