//! The run around the step: building the trainer (fresh or from a checkpoint), the step loop
//! with validation, checkpoints, metrics, plots, TensorBoard and the progress bar, and the
//! NaN stop.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oneshot_model::{parse_dtype, Model};
use oneshot_rl::{AdamW, AdvantageEstimator};
use oneshot_verify::{Checker, CheckerOptions};
use serde_json::{json, Map, Value};

use crate::checkpoint::{self, ACTOR_DIR, ACTOR_OPTIM_DIR, CRITIC_DIR};
use crate::config::TrainConfig;
use crate::critic::Critic;
use crate::metrics::{read_metrics, MetricsLog};
use crate::policy::{parse_device, Policy};
use crate::prompts::{load_prompts, PromptRenderer, TrainPrompt};
use crate::state::RunState;
use crate::step::{train_step, NonFinite};
use crate::tensorboard::EventWriter;
use crate::validate::{load_sets, validate};

/// The per-example rollout accuracy history, in the format of `acc_step_500.json`.
pub const ACCURACY_FILE: &str = "rollout_accuracy.json";
/// The resolved config of the run.
pub const RUN_CONFIG_FILE: &str = "config.toml";

pub struct Trainer {
    pub cfg: TrainConfig,
    pub policy: Policy,
    /// Frozen initial policy for the KL terms (None when KL is off).
    pub reference: Option<Model>,
    pub critic: Option<Critic>,
    pub opt: AdamW,
    pub prompts: Vec<TrainPrompt>,
    pub checker: Checker,
    pub state: RunState,
}

impl Trainer {
    /// Builds a trainer from the config, restoring weights, optimiser and run state from
    /// `checkpoint` when given.
    pub fn new(cfg: TrainConfig, checkpoint: Option<&Path>) -> Result<Self> {
        let source = oneshot_hf::resolve_model_dir(&cfg.model.path)?;
        let dtype = parse_dtype(&cfg.model.dtype)?;
        let device = parse_device(&cfg.model.device)?;
        let weights = checkpoint.map_or(source.clone(), |c| c.join(ACTOR_DIR));
        let mut policy = Policy::load(&weights, &source, dtype, &device)?;
        policy.model.set_matmul_precision(cfg.model.matmul);
        let reference = match (cfg.needs_reference(), checkpoint) {
            (false, _) => None,
            (true, None) => Some(policy.model.frozen_copy()?),
            // The reference is the initial policy, not the checkpoint's.
            (true, Some(_)) => Some(
                Model::from_dir(&source, dtype, &device)?.with_matmul_precision(cfg.model.matmul),
            ),
        };
        let mut critic_adamw = cfg.adamw();
        critic_adamw.lr = cfg.algorithm.critic_lr;
        let critic = match (
            cfg.algorithm.adv_estimator == AdvantageEstimator::Gae,
            checkpoint,
        ) {
            (false, _) => None,
            (true, None) => Some(Critic::new(policy.model.frozen_copy()?, critic_adamw)?),
            (true, Some(c)) => Some(Critic::load(
                &c.join(CRITIC_DIR),
                dtype,
                &device,
                critic_adamw,
            )?),
        };
        let mut opt = AdamW::new(policy.model.vars(), cfg.adamw())?;
        let state = match checkpoint {
            Some(c) => {
                opt.load_state(&c.join(ACTOR_OPTIM_DIR))?;
                checkpoint::read_state(c)?
            }
            None => RunState::default(),
        };
        let renderer = match cfg.data.prompt_template.as_str() {
            "chat" => PromptRenderer::Chat(policy.chat.as_ref().with_context(|| {
                format!(
                    "data.prompt_template = chat, but {} has no chat template (use `plain`)",
                    source.display()
                )
            })?),
            _ => PromptRenderer::Plain,
        };
        let prompts = load_prompts(
            &cfg.data.train_files,
            &renderer,
            &policy.tokenizer,
            cfg.data.max_prompt_length,
        )?;
        let checker = Checker::new(CheckerOptions {
            boxed_only: cfg.reward.boxed_only,
            ..Default::default()
        });
        Ok(Self {
            cfg,
            policy,
            reference,
            critic,
            opt,
            prompts,
            checker,
            state,
        })
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the newest checkpoint in the output directory.
    pub resume: bool,
    /// Stop once this many steps are done (as an interruption would; for tests and budgets).
    pub stop_after: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps_done: usize,
    pub output_dir: PathBuf,
    pub last_checkpoint: Option<PathBuf>,
    pub last_metrics: Option<Map<String, Value>>,
}

fn progress_bar(cfg: &TrainConfig, start: usize) -> ProgressBar {
    let target = if cfg.trainer.progress_bar {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(cfg.trainer.total_steps as u64), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] step {pos}/{len} ETA {eta_precise} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(start as u64);
    bar
}

fn progress_message(m: &Map<String, Value>) -> String {
    let get = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    format!(
        "reward {:.3} acc {:.3} len {:.0} {:.1}s/step",
        get("reward/mean"),
        get("acc/mean"),
        get("response_length/mean"),
        get("time/step")
    )
}

fn scalars_of(m: &Map<String, Value>) -> Vec<(String, f32)> {
    m.iter()
        .filter(|(k, _)| k.as_str() != "step")
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()? as f32)))
        .collect()
}

/// Writes the rollout accuracy history with the running epoch included.
fn write_accuracy(state: &RunState, out: &Path) -> Result<()> {
    let mut s = state.clone();
    s.close_epoch();
    oneshot_data::select::write_history(&out.join(ACCURACY_FILE), &s.accuracy)
        .with_context(|| format!("writing {}", out.join(ACCURACY_FILE).display()))
}

fn refresh_plots(out: &Path, log: &MetricsLog) -> Result<()> {
    let metrics = read_metrics(log.path())?;
    crate::plots::write_plots(&metrics, out)?;
    Ok(())
}

/// Runs (or resumes) a training run to `trainer.total_steps`.
pub fn train(cfg: TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    let out = cfg.output_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let resume_from = if opts.resume {
        let c = checkpoint::latest(&out)?;
        if c.is_none() {
            bail!(
                "--resume: no checkpoint in {}",
                checkpoint::checkpoints_dir(&out).display()
            );
        }
        c
    } else {
        if checkpoint::latest(&out)?.is_some() {
            bail!(
                "{} already holds checkpoints; pass --resume to continue, or another output dir",
                out.display()
            );
        }
        None
    };
    let mut t = Trainer::new(cfg, resume_from.as_deref())?;
    std::fs::write(out.join(RUN_CONFIG_FILE), t.cfg.to_toml_string()?)
        .with_context(|| format!("writing {}", out.join(RUN_CONFIG_FILE).display()))?;
    let mut log = MetricsLog::open(&out, t.state.step)?;
    let mut tb = if t.cfg.trainer.tensorboard {
        Some(EventWriter::create(&out.join("tensorboard"))?)
    } else {
        None
    };
    let val_cfg = t.cfg.validation.clone();
    let val_sets = if val_cfg.every > 0 || val_cfg.before_train {
        load_sets(&val_cfg, &t.policy)?
    } else {
        Vec::new()
    };
    if val_cfg.before_train && t.state.step == 0 && !val_sets.is_empty() {
        let mut m = validate(&t.policy, &val_sets, &val_cfg)?;
        m.insert("step".into(), json!(0));
        log.append(&m)?;
    }

    let total = t.cfg.trainer.total_steps;
    let stop = opts.stop_after.unwrap_or(total).min(total);
    let bar = progress_bar(&t.cfg, t.state.step);
    let mut last_checkpoint = resume_from.clone();
    let mut last_metrics = None;
    while t.state.step < stop {
        let mut m = match train_step(&mut t) {
            Ok(m) => m,
            Err(e) => {
                bar.abandon();
                let kept = last_checkpoint
                    .as_ref()
                    .map_or("none yet".to_string(), |p| p.display().to_string());
                let what = if e.downcast_ref::<NonFinite>().is_some() {
                    "stopped on a non-finite value"
                } else {
                    "failed"
                };
                return Err(e.context(format!(
                    "training {what} at step {}; nothing was saved for it; last good checkpoint: {kept}",
                    t.state.step + 1
                )));
            }
        };
        let step = t.state.step;
        if val_cfg.every > 0 && step % val_cfg.every == 0 && !val_sets.is_empty() {
            m.extend(validate(&t.policy, &val_sets, &val_cfg)?);
        }
        log.append(&m)?;
        if let Some(tb) = tb.as_mut() {
            tb.scalars(step as i64, &scalars_of(&m))?;
        }
        bar.set_message(progress_message(&m));
        bar.set_position(step as u64);
        let save_now =
            (t.cfg.trainer.save_every > 0 && step % t.cfg.trainer.save_every == 0) || step == total;
        if save_now {
            last_checkpoint = Some(checkpoint::save(&t, &out)?);
            checkpoint::prune(&out, t.cfg.trainer.keep_checkpoints)?;
            write_accuracy(&t.state, &out)?;
            if t.cfg.trainer.plots {
                refresh_plots(&out, &log)?;
            }
        }
        last_metrics = Some(m);
    }
    bar.finish();
    write_accuracy(&t.state, &out)?;
    if t.cfg.trainer.plots {
        refresh_plots(&out, &log)?;
    }
    Ok(RunSummary {
        steps_done: t.state.step,
        output_dir: out,
        last_checkpoint,
        last_metrics,
    })
}
