//! RL runs of the demo: a trainer config for a lab model (the paper's recipe with the budget's
//! sizes), and the step loop around `oneshot_train::step::train_step` that writes
//! `metrics.jsonl` and lets the caller add held-out points between steps.
use super::budget::Budget;
use super::files;
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use oneshot_train::step::train_step;
use oneshot_train::{TrainConfig, Trainer};
use serde_json::{Map, Value};
use std::io::Write;
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
        }
    }
}

/// The trainer config of a lab run: the paper's GRPO recipe (token-mean loss, k3 KL, entropy
/// bonus, AdamW with clip 1.0, one update per rollout batch) with the budget's sizes, f32 on
/// the CPU, and none of the trainer's own checkpoints, plots or validation (the demo evaluates
/// with the lab metric itself).
pub fn train_config(model: &Path, spec: &RlSpec, budget: &Budget) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::default();
    cfg.model.path = model.display().to_string();
    cfg.model.dtype = "f32".into();
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
    cfg.trainer.total_steps = spec.steps;
    cfg.trainer.mini_batch_size = spec.batch;
    cfg.trainer.seed = spec.seed;
    cfg.trainer.save_every = 0;
    cfg.trainer.output_dir = spec.out_dir.display().to_string();
    cfg.trainer.plots = false;
    cfg.trainer.progress_bar = false;
    cfg.validation.every = 0;
    cfg.validate().context("the demo's trainer config")?;
    Ok(cfg)
}

/// Runs `cfg.trainer.total_steps` steps from the config's model. After each step `between`
/// may return extra metrics (held-out points) that join the step's line of `metrics.jsonl`.
/// Returns the trainer (its policy is the trained model) and every metrics line.
pub fn run_steps(
    cfg: TrainConfig,
    bar: &ProgressBar,
    mut between: impl FnMut(&Trainer, &Map<String, Value>) -> Result<Map<String, Value>>,
) -> Result<(Trainer, Vec<Map<String, Value>>)> {
    let out = cfg.output_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let total = cfg.trainer.total_steps;
    let mut t = Trainer::new(cfg, None)?;
    let path = out.join(files::METRICS);
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut lines = Vec::with_capacity(total);
    while t.state.step < total {
        let mut m = train_step(&mut t)
            .with_context(|| format!("RL step {} of {}", t.state.step + 1, total))?;
        let extra = between(&t, &m)?;
        m.extend(extra);
        serde_json::to_writer(&mut log, &m)?;
        log.write_all(b"\n")?;
        log.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        let get = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        bar.set_message(format!(
            "acc {:.2} entropy {:.3} {:.1}s/step",
            get("acc/mean"),
            get("actor/entropy"),
            get("time/step")
        ));
        bar.inc(1);
        lines.push(m);
    }
    Ok((t, lines))
}

/// The per-example rollout accuracy history of a finished run, the running epoch included
/// (the format of `acc_step_500.json`).
pub fn history(t: &Trainer) -> oneshot_data::select::History {
    let mut s = t.state.clone();
    s.close_epoch();
    s.accuracy
}
