//! One training step of 1-shot RLVR, read top to bottom in [`train_step`]: (1) the batch of
//! prompt rows, each repeated `n` times; (2) rollouts from the detached policy; (3) rewards
//! (checker vs label, optional format and HAPO length rewards); (4) the reference and old
//! log-probs and critic values the update needs; (5) advantages (each batch row is its own group
//! of n, as verl); (6) the actor update and (7) the critic update (`update`). Validation and
//! checkpoints happen around the step (see `trainer`).

use std::time::Instant;

use anyhow::{Context, Result};
use oneshot_model::{FinishReason, GenerateOptions, LogprobOptions, SamplerConfig};
use oneshot_rl::advantages::{contiguous_groups, outcome_token_rewards, AdvantageInputs};
use oneshot_rl::filter::{drop_zero_advantage_groups, GroupFilter};
use oneshot_rl::kl::kl_in_reward;
use oneshot_rl::reward::{reward_batch, ResponseOutcome, RewardParts};
use rayon::prelude::*;

use crate::data_parallel::{self as dp, Outcome};
use crate::experience::{grid, logprobs_detached, ragged, values_detached, Experience};
use crate::metrics::{RewardStats, StepMetrics, StepTimes};
use crate::prompts::{batch_rows, rank_rows};
use crate::seeds::rollout_seed;
use crate::trainer::{RolloutRecord, Trainer};
use crate::update::{update_actor, update_critic};

pub use crate::update::NonFinite;

/// Runs step `t.state.step` (0-based) and returns its metrics.
pub fn train_step(t: &mut Trainer) -> Result<StepMetrics> {
    let started = Instant::now();
    let mut time = StepTimes::default();
    let batch = batch_rows(
        t.prompts.len(),
        t.cfg.data.train_batch_size,
        t.state.step,
        t.cfg.trainer.seed,
        t.cfg.data.shuffle,
    );
    // Data parallel: this rank's slice of the batch (all of it in one process).
    let world = t.dist.world();
    let (first, rows) = rank_rows(&batch, world.rank, world.size);
    if world.size > 1 {
        dp::log_rows(world.rank, t.state.step + 1, first, rows);
    }
    let (mut exp, rollout) = timed(&mut time.rollout, || rollout(t, rows, first))?;
    let rewards = timed(&mut time.reward, || reward(t, rows, &exp, &rollout))?;
    t.last_rollouts = records(t, rows, rollout.texts, &rewards.correct);
    timed(&mut time.logprob, || detached_passes(t, &mut exp))?;
    let adv = advantages(t, &mut exp, &rewards.parts)?;
    let lr = t.cfg.schedule().lr_at(t.state.step);
    let (actor, critic_loss) = timed(&mut time.update, || {
        if adv.global_train_rows == 0 {
            return Ok((None, None));
        }
        let actor = update_actor(t, &exp, &adv.train_rows, lr)?;
        let (dist, cfg, pad) = (t.dist.as_ref(), &t.cfg, t.policy.pad_id);
        let critic = t
            .critic
            .as_mut()
            .map(|c| update_critic(dist, c, cfg, &exp, &adv.train_rows, pad))
            .transpose()?;
        Ok((Some(actor), critic))
    })?;
    time.step = started.elapsed().as_secs_f64();
    t.state.step += 1;

    let gen_tokens: usize = rewards.all.iter().map(|o| o.len_tokens).sum();
    let all_tokens = gen_tokens + rewards.all.iter().map(|o| o.prompt_tokens).sum::<usize>();
    Ok(StepMetrics {
        step: t.state.step,
        epoch: t.state.epoch,
        reward: RewardStats {
            kl_penalty: adv.kl_penalty,
            ..rewards.stats(&t.cfg)
        },
        lengths: dp::length_stats(&rewards.all),
        dropped_groups: adv.dropped_groups,
        lr,
        skipped: actor.is_none(),
        actor,
        critic_loss,
        gen_tokens_per_s: gen_tokens as f64 / time.rollout.max(1e-9),
        tokens_per_s: all_tokens as f64 / time.step.max(1e-9),
        time,
        validation: Default::default(),
    })
}

/// Runs `f`, adding its wall time to `slot`.
fn timed<T>(slot: &mut f64, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let clock = Instant::now();
    let out = f();
    *slot += clock.elapsed().as_secs_f64();
    out
}

/// What the rollout produced besides the experience.
struct Rollout {
    texts: Vec<String>,
    finish: Vec<FinishReason>,
}

/// Step 2: `n` rollouts of every batch row from the detached policy; response (row b, sample j)
/// draws from its own seed, so the tokens do not depend on how responses are batched; `first`
/// is the batch position of `rows[0]` (a rank's slice keeps the single-process seeds).
fn rollout(t: &Trainer, rows: &[usize], first: usize) -> Result<(Experience, Rollout)> {
    let cfg = &t.cfg;
    let n = cfg.rollout.n;
    let total = rows.len() * n;
    let mut exp = Experience {
        prompts: (0..total)
            .map(|i| t.prompts[rows[i / n]].prompt_ids.clone())
            .collect(),
        ..Default::default()
    };
    let seeds: Vec<u64> = (0..total)
        .map(|i| rollout_seed(cfg.trainer.seed, t.state.step, first + i / n, i % n))
        .collect();
    let opts = GenerateOptions {
        sampler: SamplerConfig {
            temperature: cfg.rollout.temperature,
            top_p: cfg.rollout.top_p,
            top_k: cfg.rollout.top_k,
        },
        max_new_tokens: cfg.rollout.max_response_length,
        eos_token_ids: t.policy.eos_ids.clone(),
        stop_sequences: Vec::new(),
        pad_token_id: t.policy.pad_id,
    };
    // Continuous batching: at most generation_batch_size responses decode at once, and a
    // finished one's slot goes to the next waiting response at once (identical prompts are
    // prefilled once and their keys/values shared).
    let generated = t.policy.model.generate_continuous(
        &exp.prompts,
        &seeds,
        &opts,
        cfg.rollout.generation_batch_size,
        None,
    );
    let mut finish = Vec::with_capacity(total);
    for g in generated.context("rollout")? {
        exp.responses.push(g.tokens);
        finish.push(g.finish);
    }
    let texts = exp
        .responses
        .iter()
        .map(|r| t.policy.decode(r))
        .collect::<Result<_>>()?;
    Ok((exp, Rollout { texts, finish }))
}

/// The rewards of one batch: this rank's parts (for its advantages) and every rank's
/// outcomes (for the statistics and histories, the same on every rank).
struct Rewards {
    parts: Vec<RewardParts>,
    all: Vec<Outcome>,
    /// This rank's checker verdicts, one per response.
    correct: Vec<bool>,
}

impl Rewards {
    fn stats(&self, cfg: &crate::TrainConfig) -> RewardStats {
        let mean = |v: &mut dyn Iterator<Item = f64>| {
            let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            s / n.max(1) as f64
        };
        let r_mean = mean(&mut self.all.iter().map(|p| p.total));
        let var = mean(&mut self.all.iter().map(|p| (p.total - r_mean).powi(2)));
        RewardStats {
            mean: r_mean,
            std: var.sqrt(),
            accuracy: mean(&mut self.all.iter().map(|o| o.correct as u8 as f64)),
            format: (cfg.reward.format_value != 0.0)
                .then(|| mean(&mut self.all.iter().map(|p| p.format))),
            length: cfg
                .reward
                .length_reward
                .then(|| mean(&mut self.all.iter().map(|p| p.length))),
            kl_penalty: None,
        }
    }
}

/// Step 3: The checker against each row's label (1/0), plus the optional format and HAPO length
/// rewards (HAPO scores against the history from before this batch, then updates it); the
/// outcomes also feed the per-example accuracy history that selection ranks by. Both
/// histories take every rank's outcomes.
fn reward(t: &mut Trainer, rows: &[usize], exp: &Experience, ro: &Rollout) -> Result<Rewards> {
    let texts = &ro.texts;
    let n = t.cfg.rollout.n;
    let row_of = |i: usize| &t.prompts[rows[i / n]];
    let correct: Vec<bool> = (0..exp.len())
        .into_par_iter()
        .map(|i| t.checker.check(&texts[i], &row_of(i).label).correct)
        .collect();
    let keys: Vec<String> = (0..exp.len())
        .map(|i| row_of(i).index.to_string())
        .collect();
    let outcomes: Vec<ResponseOutcome> = (0..exp.len())
        .map(|i| ResponseOutcome {
            problem: &keys[i],
            text: &texts[i],
            len_tokens: exp.responses[i].len(),
            correct: correct[i],
        })
        .collect();
    // Scored against the history from before the batch; the batch enters it below.
    let reward_cfg = t.cfg.reward();
    let parts = reward_batch(&reward_cfg, &mut t.state.hapo.clone(), &outcomes);
    let mine: Vec<Outcome> = (0..exp.len())
        .map(|i| Outcome {
            index: row_of(i).index,
            len_tokens: exp.responses[i].len(),
            prompt_tokens: exp.prompts[i].len(),
            correct: correct[i],
            truncated: ro.finish[i] == FinishReason::Length,
            total: parts[i].total,
            format: parts[i].format,
            length: parts[i].length,
        })
        .collect();
    let all = dp::gather_outcomes(t.dist.as_ref(), &mine)?;
    let batch = t.cfg.data.train_batch_size;
    let hapo_on = reward_cfg.length_weight.is_some();
    let (first_row, n_rows) = (t.state.step * batch, t.prompts.len());
    dp::record_outcomes(&mut t.state, &all, hapo_on, first_row, batch, n_rows);
    Ok(Rewards {
        parts,
        all,
        correct,
    })
}

/// This rank's responses with their prompt's example index and verdict.
fn records(
    t: &Trainer,
    rows: &[usize],
    texts: Vec<String>,
    correct: &[bool],
) -> Vec<RolloutRecord> {
    let n = t.cfg.rollout.n;
    texts
        .into_iter()
        .zip(correct)
        .enumerate()
        .map(|(i, (text, &correct))| RolloutRecord {
            index: t.prompts[rows[i / n]].index,
            text,
            correct,
        })
        .collect()
}

/// Step 4: Detached passes: reference log-probs (KL), the rollout policy's log-probs when the
/// policy changes before some update (several mini-batches or epochs) or KL is in the
/// reward, and critic values.
fn detached_passes(t: &Trainer, exp: &mut Experience) -> Result<()> {
    let cfg = &t.cfg;
    let all: Vec<usize> = (0..exp.len()).collect();
    let plan = exp.plan_micro_batches(&all, cfg.trainer.micro_batch_tokens);
    let opts = logprob_options(cfg);
    let (temp, pad) = (cfg.rollout.temperature, t.policy.pad_id);
    if let Some(reference) = &t.reference {
        exp.ref_logp = Some(logprobs_detached(reference, exp, &plan, temp, &opts, pad)?);
    }
    let on_policy =
        cfg.trainer.ppo_epochs == 1 && cfg.trainer.mini_batch_size == cfg.data.train_batch_size;
    if !on_policy || cfg.algorithm.kl_in_reward {
        let model = &t.policy.model;
        exp.old_logp = Some(logprobs_detached(model, exp, &plan, temp, &opts, pad)?);
    }
    if let Some(critic) = &t.critic {
        exp.values = Some(values_detached(critic, exp, &plan, pad)?);
    }
    Ok(())
}

/// The log-prob pass settings of a config.
pub(crate) fn logprob_options(cfg: &crate::TrainConfig) -> LogprobOptions {
    LogprobOptions {
        chunk_rows: cfg.model.logprob_chunk_rows,
        recompute_layers: cfg.model.recompute_layers,
    }
}

/// What the advantage stage decided.
struct AdvantageOutcome {
    /// The rows the update trains on (all, unless zero-advantage groups are dropped).
    train_rows: Vec<usize>,
    /// Rows trained on by all ranks together (none: the step is skipped on every rank).
    global_train_rows: usize,
    dropped_groups: Option<usize>,
    kl_penalty: Option<f64>,
}

/// Step 5: Token rewards (the score on the last token, minus the KL penalty when KL is in the
/// reward), then the configured estimator (`oneshot_rl`), each row's n responses one group.
fn advantages(
    t: &Trainer,
    exp: &mut Experience,
    parts: &[RewardParts],
) -> Result<AdvantageOutcome> {
    let a = &t.cfg.algorithm;
    let all: Vec<usize> = (0..exp.len()).collect();
    let lens: Vec<usize> = exp.responses.iter().map(Vec::len).collect();
    let cols = exp.max_response(&all);
    let mask = exp.mask(&all, cols);
    let scores: Vec<f32> = parts.iter().map(|p| p.total as f32).collect();
    let mut token_rewards = outcome_token_rewards(&scores, &mask)?;
    let mut kl_penalty = None;
    if a.kl_in_reward {
        let old = exp
            .old_logp
            .as_ref()
            .context("KL in reward needs the old log-probs")?;
        let refp = exp
            .ref_logp
            .as_ref()
            .context("KL in reward needs the reference policy")?;
        let (old, refp) = (grid(old, &all, cols), grid(refp, &all, cols));
        let (kind, coef) = (a.kl_reward_type, a.kl_reward_coef as f32);
        let (shaped, kl) = kl_in_reward(&token_rewards, &old, &refp, &mask, kind, coef)?;
        token_rewards = shaped;
        // The masked mean over the whole batch's tokens.
        let tokens = lens.iter().sum::<usize>() as f64;
        let mut v = [kl as f64 * tokens, tokens];
        dp::sum_scalars(t.dist.as_ref(), &mut v)?;
        kl_penalty = Some(v[0] / v[1].max(1.0));
    }
    let group_of = contiguous_groups(exp.len(), t.cfg.rollout.n)?;
    let values = exp.values.as_ref().map(|v| grid(v, &all, cols));
    let out = a.adv_estimator.compute(&AdvantageInputs {
        token_rewards: &token_rewards,
        mask: &mask,
        group_of: &group_of,
        values: values.as_ref(),
        gamma: a.gamma,
        lam: a.lam,
    })?;
    exp.advantages = ragged(&out.advantages, &lens);
    exp.returns = out.returns.map(|r| ragged(&r, &lens));

    // Optionally keep only groups with a learning signal; with none left, skip the update.
    if !a.drop_zero_adv_groups {
        return Ok(AdvantageOutcome {
            global_train_rows: all.len() * t.dist.world().size,
            train_rows: all,
            dropped_groups: None,
            kl_penalty,
        });
    }
    let signal: Vec<f32> = exp
        .advantages
        .iter()
        .map(|a| a.iter().fold(0f32, |s, x| s.max(x.abs())))
        .collect();
    let (train_rows, dropped) = match drop_zero_advantage_groups(&signal, &group_of)? {
        GroupFilter::Keep {
            rows,
            dropped_groups,
        } => (rows, dropped_groups),
        GroupFilter::SkipStep { dropped_groups } => (Vec::new(), dropped_groups),
    };
    let mut counts = [train_rows.len() as f64, dropped as f64];
    dp::sum_scalars(t.dist.as_ref(), &mut counts)?;
    Ok(AdvantageOutcome {
        train_rows,
        global_train_rows: counts[0].round() as usize,
        dropped_groups: Some(counts[1].round() as usize),
        kl_penalty,
    })
}
