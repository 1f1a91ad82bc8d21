//! The run around the step: building the trainer (fresh or from a checkpoint) and the one
//! training loop (`train_with`) that `oneshot train`, the demo and `lab reproduce` share:
//! validation, checkpoints, metrics, plots, TensorBoard, progress, and the NaN stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use oneshot_dist::Collective;
use oneshot_model::Model;
use oneshot_optim::AdamW;
use oneshot_run::{Progress, Style};
use oneshot_verify::{Checker, CheckerOptions};
use serde_json::{json, Map, Value};

use crate::checkpoint::{self, ACTOR_ADAPTER_DIR, ACTOR_DIR, ACTOR_OPTIM_DIR, CRITIC_DIR};
use crate::config::{PromptTemplate, TrainConfig};
use crate::critic::Critic;
use crate::data_parallel as dp;
use crate::metrics::{names, read_metrics, MetricsLog, StepMetrics};
use crate::policy::Policy;
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
    /// Frozen initial policy for the KL terms (None when KL is off). With LoRA it is the
    /// policy's own base with the adapters off, sharing its weights (no second copy).
    pub reference: Option<Model>,
    pub critic: Option<Critic>,
    pub opt: AdamW,
    pub prompts: Vec<TrainPrompt>,
    pub checker: Checker,
    pub state: RunState,
    /// The ranks training together (one process: `oneshot_dist::Single`); rank 0 writes.
    pub dist: Arc<dyn Collective>,
    /// This rank's responses of the last step with their checker verdicts, for callers that
    /// judge responses further between steps (the lab reads their layout). Not checkpointed.
    pub last_rollouts: Vec<RolloutRecord>,
}

/// One response of a step's rollouts.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    /// The prompt's example index (`extra_info.index`).
    pub index: i64,
    pub text: String,
    /// The checker's verdict against the row's label.
    pub correct: bool,
}

impl Trainer {
    /// Runs one training step (see [`crate::step`]).
    pub fn step(&mut self) -> Result<StepMetrics> {
        train_step(self)
    }

    /// Builds a trainer from the config, restoring weights, optimiser and run state from
    /// `checkpoint` when given.
    pub fn new(cfg: TrainConfig, checkpoint: Option<&Path>) -> Result<Self> {
        let dist = oneshot_dist::global()?;
        dp::check_world(&cfg, dist.world())?;
        let source = oneshot_hf::resolve_model_dir(&cfg.model.path)?;
        let dtype = cfg.model.dtype.dtype();
        let device = cfg.model.device.open()?;
        let lora = cfg.lora.enabled;
        // With LoRA the base always comes from the source; checkpoints hold adapters only.
        let (weights, load_dtype) = match (lora, checkpoint) {
            (true, _) => (source.clone(), cfg.lora.base_dtype(cfg.model.dtype)?),
            (false, c) => (c.map_or(source.clone(), |c| c.join(ACTOR_DIR)), dtype),
        };
        let mut policy = Policy::load(&weights, &source, load_dtype, &device)?;
        policy.model.set_matmul_precision(cfg.model.matmul);
        if lora {
            attach_adapters(&mut policy.model, &cfg, checkpoint)?;
        }
        // Ranks start from rank 0's weights and run state (each reads the checkpoint's
        // optimiser state itself: the output directory is shared).
        dp::broadcast_vars(dist.as_ref(), &policy.model.vars())?;
        let reference = match (cfg.needs_reference(), lora, checkpoint) {
            (false, _, _) => None,
            (true, true, _) => Some(policy.model.without_adapters()),
            (true, false, None) => Some(policy.model.frozen_copy()?),
            // The reference is the initial policy, not the checkpoint's.
            (true, false, Some(_)) => Some(
                Model::from_dir(&source, dtype, &device)?.with_matmul_precision(cfg.model.matmul),
            ),
        };
        let mut critic_adamw = cfg.adamw();
        critic_adamw.lr = cfg.algorithm.critic_lr;
        let critic = match (cfg.algorithm.adv_estimator.needs_critic(), checkpoint) {
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
        let mut state = state;
        dp::broadcast_state(dist.as_ref(), &mut state)?;
        let renderer = match cfg.data.prompt_template {
            PromptTemplate::Chat => {
                PromptRenderer::Chat(policy.chat.as_ref().with_context(|| {
                    format!(
                        "data.prompt_template = chat, but {} has no chat template (use `plain`)",
                        source.display()
                    )
                })?)
            }
            PromptTemplate::Plain => PromptRenderer::Plain,
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
            dist,
            last_rollouts: Vec::new(),
        })
    }
}

/// Puts the run's adapters on the base: fresh (PEFT's initialisation, seeded by the run
/// seed) or the checkpoint's, with the dropout stream where the checkpoint left it.
fn attach_adapters(model: &mut Model, cfg: &TrainConfig, checkpoint: Option<&Path>) -> Result<()> {
    let calls = match checkpoint {
        None => {
            model.add_lora(cfg.lora.model_config()?, cfg.trainer.seed)?;
            0
        }
        Some(c) => {
            let dir = c.join(ACTOR_ADAPTER_DIR);
            model
                .load_lora(&dir)
                .with_context(|| format!("loading the adapters of {}", c.display()))?;
            checkpoint::read_lora_state(c)?.dropout_calls
        }
    };
    let lora = model.lora_mut().context("adapters were just attached")?;
    lora.set_dropout_state(cfg.trainer.seed, calls);
    lora.set_merge_for_decode(cfg.lora.merge_for_decode);
    Ok(())
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Continue from the newest checkpoint in the output directory.
    pub resume: bool,
    /// Stop once this many steps are done (as an interruption would; for tests and budgets).
    pub stop_after: Option<usize>,
    /// Write checkpoints (`trainer.save_every` and the last step). Runs that hand their model
    /// on in memory (the demo's stages) turn them off.
    pub checkpoints: bool,
    /// What the progress display calls the run.
    pub label: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            resume: false,
            stop_after: None,
            checkpoints: true,
            label: "train".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps_done: usize,
    pub output_dir: PathBuf,
    pub last_checkpoint: Option<PathBuf>,
    pub last_metrics: Option<StepMetrics>,
}

/// Writes the rollout accuracy history with the running epoch included.
fn write_accuracy(state: &RunState, out: &Path) -> Result<()> {
    oneshot_data::select::write_history(&out.join(ACCURACY_FILE), &state.accuracy_so_far())
        .with_context(|| format!("writing {}", out.join(ACCURACY_FILE).display()))
}

fn refresh_plots(out: &Path, log: &MetricsLog) -> Result<()> {
    let metrics = read_metrics(log.path())?;
    crate::plots::write_plots(&metrics, out)?;
    Ok(())
}

/// The checkpoint a run starts from: the newest one with `--resume` (which needs one), none
/// otherwise (and then the directory must not hold any, so no run is overwritten).
fn starting_checkpoint(out: &Path, opts: &RunOptions) -> Result<Option<PathBuf>> {
    let latest = checkpoint::latest(out)?;
    match (opts.resume, latest) {
        (true, None) => bail!(
            "--resume: no checkpoint in {}",
            checkpoint::checkpoints_dir(out).display()
        ),
        (false, Some(_)) if opts.checkpoints => bail!(
            "{} already holds checkpoints; pass --resume to continue, or another output dir",
            out.display()
        ),
        (true, latest) => Ok(latest),
        (false, _) => Ok(None),
    }
}

/// Runs (or resumes) a training run to `trainer.total_steps`.
pub fn train(cfg: TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    Ok(train_with(cfg, opts, |_, _| Ok(()))?.1)
}

/// The training loop: builds the trainer, then step by step runs [`train_step`], lets
/// `after_step` add points to the step's metrics (validation of its own, curves), validates,
/// logs (`metrics.jsonl`, TensorBoard, progress), checkpoints and plots. Returns the trainer
/// (its policy is the trained model) with the summary. A failed step stops the run with the
/// last good checkpoint named and nothing saved for the failed step.
pub fn train_with(
    cfg: TrainConfig,
    opts: &RunOptions,
    mut after_step: impl FnMut(&Trainer, &mut StepMetrics) -> Result<()>,
) -> Result<(Trainer, RunSummary)> {
    let out = cfg.output_dir();
    // Rank 0 alone writes (files, validation, plots); every rank reads checkpoints.
    let root = oneshot_dist::global()?.world().is_root();
    if root {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    }
    let resume_from = starting_checkpoint(&out, opts)?;
    let mut t = Trainer::new(cfg, resume_from.as_deref())?;
    if root {
        std::fs::write(out.join(RUN_CONFIG_FILE), t.cfg.to_toml_string()?)
            .with_context(|| format!("writing {}", out.join(RUN_CONFIG_FILE).display()))?;
    }
    let mut log = root
        .then(|| MetricsLog::open(&out, t.state.step))
        .transpose()?;
    let mut tb = match t.cfg.trainer.tensorboard && root {
        true => Some(EventWriter::create(&out.join("tensorboard"))?),
        false => None,
    };
    let val_cfg = t.cfg.validation.clone();
    let val_sets = match (val_cfg.every > 0 || val_cfg.before_train) && root {
        true => load_sets(&val_cfg, &t.policy)?,
        false => Vec::new(),
    };
    if val_cfg.before_train && t.state.step == 0 && !val_sets.is_empty() {
        let mut m: Map<String, Value> = validate(&t.policy, &val_sets, &val_cfg)?
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        m.insert(names::STEP.into(), json!(0));
        if let Some(log) = log.as_mut() {
            log.append(&m)?;
        }
    }

    let total = t.cfg.trainer.total_steps;
    let stop = opts.stop_after.unwrap_or(total).min(total);
    let bar = progress(&t.cfg, &opts.label, t.state.step, root);
    let mut last_checkpoint = resume_from.clone();
    let mut last_metrics = None;
    while t.state.step < stop {
        let mut m = train_step(&mut t).map_err(|e| {
            bar.finish();
            let kept = last_checkpoint
                .as_ref()
                .map_or("none yet".to_string(), |p| p.display().to_string());
            let what = match e.downcast_ref::<NonFinite>() {
                Some(_) => "stopped on a non-finite value",
                None => "failed",
            };
            let step = t.state.step + 1;
            e.context(format!(
                "training {what} at step {step}; nothing was saved for it; last good checkpoint: {kept}"
            ))
        })?;
        let step = t.state.step;
        if val_cfg.every > 0 && step % val_cfg.every == 0 && !val_sets.is_empty() {
            m.validation
                .extend(validate(&t.policy, &val_sets, &val_cfg)?);
        }
        after_step(&t, &mut m)?;
        if let Some(log) = log.as_mut() {
            log.append(&m.to_map()?)?;
        }
        if let Some(tb) = tb.as_mut() {
            tb.scalars(step as i64, &m.scalars()?)?;
        }
        bar.message(m.progress_message());
        bar.set(step as u64);
        let every = t.cfg.trainer.save_every;
        let save_now = (every > 0 && step % every == 0) || step == total;
        if let (true, true, Some(log)) = (opts.checkpoints, save_now, log.as_ref()) {
            last_checkpoint = Some(checkpoint::save(&t, &out)?);
            checkpoint::prune(&out, t.cfg.trainer.keep_checkpoints)?;
            write_accuracy(&t.state, &out)?;
            if t.cfg.trainer.plots {
                refresh_plots(&out, log)?;
            }
        } else if opts.checkpoints && save_now {
            last_checkpoint =
                Some(checkpoint::checkpoints_dir(&out).join(checkpoint::step_dir_name(step)));
        }
        last_metrics = Some(m);
    }
    bar.finish();
    if let Some(log) = log.as_ref() {
        write_accuracy(&t.state, &out)?;
        if t.cfg.trainer.plots {
            refresh_plots(&out, log)?;
        }
    }
    let summary = RunSummary {
        steps_done: t.state.step,
        output_dir: out,
        last_checkpoint,
        last_metrics,
    };
    Ok((t, summary))
}

/// Steps done of the run, shown as the run's config asks (a bar on a terminal, lines on a pipe).
fn progress(cfg: &TrainConfig, label: &str, start: usize, root: bool) -> Progress {
    let style = if cfg.trainer.progress_bar && root {
        Style::Auto
    } else {
        Style::Quiet
    };
    let total = cfg.trainer.total_steps as u64;
    Progress::with_style(label, total, style)
        .unit("steps")
        .resumed(start as u64)
}
