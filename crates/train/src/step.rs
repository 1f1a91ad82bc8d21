//! One training step of 1-shot RLVR, top to bottom:
//! 1. the batch of prompt rows; 2. n rollouts per row from the detached policy;
//! 3. rewards (checker vs label, optional format and HAPO length rewards);
//! 4. reference / old log-probs and critic values (only those the configuration needs);
//! 5. advantages (each batch row is its own group of n, as verl);
//! 6. the loss on temperature-scaled log-probs; 7. micro-batched gradient accumulation,
//!    mini-batches and epochs, AdamW with global grad-norm clipping.
//! Validation and checkpoints happen around the step (see `trainer`).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use oneshot_model::{FinishReason, GenerateOptions, LogprobOptions, SamplerConfig};
use oneshot_rl::advantages::{self, contiguous_groups, expand_to_tokens, outcome_token_rewards};
use oneshot_rl::filter::{drop_zero_advantage_groups, GroupFilter};
use oneshot_rl::kl::kl_in_reward;
use oneshot_rl::loss::{value_loss, ValueLossInputs};
use oneshot_rl::reward::{reward_batch, ResponseOutcome};
use oneshot_rl::{policy_loss, AdvantageEstimator, AggScope, LossAgg, PolicyLossInputs, TokenGrid};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use crate::experience::{grid, logprobs_detached, ragged, values_detached, Experience};
use crate::prompts::batch_rows;
use crate::seeds::rollout_seed;
use crate::trainer::Trainer;

/// A loss or gradient that is NaN or infinite: the run must stop without saving.
#[derive(Debug)]
pub struct NonFinite(pub String);

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NonFinite {}

/// Runs step `t.state.step` (0-based) and returns its metrics.
pub fn train_step(t: &mut Trainer) -> Result<Map<String, Value>> {
    let cfg = t.cfg.clone();
    let step = t.state.step;
    let n = cfg.rollout.n;
    let step_start = Instant::now();
    let mut m = Map::new();

    // 1. The batch: `train_batch_size` prompt rows, each repeated n times (response i belongs
    //    to row i / n).
    let rows = batch_rows(
        t.prompts.len(),
        cfg.data.train_batch_size,
        step,
        cfg.trainer.seed,
        cfg.data.shuffle,
    );
    let row_of = |i: usize| &t.prompts[rows[i / n]];
    let total = rows.len() * n;

    // 2. Rollout from the detached policy; response (row b, sample j) draws from its own seed.
    let clock = Instant::now();
    let mut exp = Experience {
        prompts: (0..total).map(|i| row_of(i).prompt_ids.clone()).collect(),
        ..Default::default()
    };
    let seeds: Vec<u64> = (0..total)
        .map(|i| rollout_seed(cfg.trainer.seed, step, i / n, i % n))
        .collect();
    let gen_opts = GenerateOptions {
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
    let mut finish = Vec::with_capacity(total);
    for chunk in (0..total)
        .collect::<Vec<_>>()
        .chunks(cfg.rollout.generation_batch_size)
    {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|&i| exp.prompts[i].clone()).collect();
        let seeds: Vec<u64> = chunk.iter().map(|&i| seeds[i]).collect();
        for g in t
            .policy
            .model
            .generate(&prompts, &seeds, &gen_opts, None)
            .context("rollout")?
        {
            exp.responses.push(g.tokens);
            finish.push(g.finish);
        }
    }
    let texts: Vec<String> = exp
        .responses
        .iter()
        .map(|r| t.policy.decode(r))
        .collect::<Result<_>>()?;
    let time_rollout = clock.elapsed().as_secs_f64();

    // 3. Reward: the checker against the label (1/0), plus the optional format and HAPO length
    //    rewards (HAPO scores against the history from before this batch, then updates it).
    let clock = Instant::now();
    let checker = &t.checker;
    let correct: Vec<bool> = (0..total)
        .into_par_iter()
        .map(|i| checker.check(&texts[i], &row_of(i).label).correct)
        .collect();
    let keys: Vec<String> = (0..total).map(|i| row_of(i).index.to_string()).collect();
    let outcomes: Vec<ResponseOutcome> = (0..total)
        .map(|i| ResponseOutcome {
            problem: &keys[i],
            text: &texts[i],
            len_tokens: exp.responses[i].len(),
            correct: correct[i],
        })
        .collect();
    let parts = reward_batch(&cfg.reward(), &mut t.state.hapo, &outcomes);
    let scores: Vec<f32> = parts.iter().map(|p| p.total as f32).collect();
    let per_example: Vec<(i64, bool)> = (0..total).map(|i| (row_of(i).index, correct[i])).collect();
    t.state
        .record_outcomes(&per_example, step * rows.len(), rows.len(), t.prompts.len());
    let time_reward = clock.elapsed().as_secs_f64();

    // 4. Log-probs and values the update needs, detached. The old log-probs are only computed
    //    when the policy changes between rollout and some update (several mini-batches or
    //    epochs) or when KL goes into the reward.
    let clock = Instant::now();
    let all: Vec<usize> = (0..total).collect();
    let plan = exp.plan_micro_batches(&all, cfg.trainer.micro_batch_tokens);
    let lp_opts = LogprobOptions {
        chunk_rows: cfg.model.logprob_chunk_rows,
        checkpoint_layers: cfg.model.gradient_checkpointing,
    };
    let temp = cfg.rollout.temperature;
    let pad = t.policy.pad_id;
    if let Some(reference) = &t.reference {
        exp.ref_logp = Some(logprobs_detached(
            reference, &exp, &plan, temp, &lp_opts, pad,
        )?);
    }
    let on_policy =
        cfg.trainer.ppo_epochs == 1 && cfg.trainer.mini_batch_size == cfg.data.train_batch_size;
    if !on_policy || cfg.algorithm.kl_in_reward {
        exp.old_logp = Some(logprobs_detached(
            &t.policy.model,
            &exp,
            &plan,
            temp,
            &lp_opts,
            pad,
        )?);
    }
    if let Some(critic) = &t.critic {
        exp.values = Some(values_detached(critic, &exp, &plan, pad)?);
    }
    let time_logprob = clock.elapsed().as_secs_f64();

    // 5. Advantages. Outcome estimators (GRPO, Dr.GRPO, RLOO) use one score per response
    //    (the token rewards summed, which is the score unless KL is in the reward); the token
    //    estimators (REINFORCE++, GAE) use the token rewards.
    let lens: Vec<usize> = exp.responses.iter().map(Vec::len).collect();
    let cols = exp.max_response(&all);
    let mask = exp.mask(&all, cols);
    let mut token_rewards = outcome_token_rewards(&scores, &mask)?;
    if cfg.algorithm.kl_in_reward {
        let (old, refp) = (
            exp.old_logp.as_ref().expect("computed above"),
            exp.ref_logp.as_ref(),
        );
        let refp = refp.context("KL in reward needs the reference policy")?;
        let (shaped, kl_mean) = kl_in_reward(
            &token_rewards,
            &grid(old, &all, cols),
            &grid(refp, &all, cols),
            &mask,
            cfg.algorithm.kl_reward_type,
            cfg.algorithm.kl_reward_coef,
        )?;
        token_rewards = shaped;
        m.insert("actor/reward_kl".into(), json!(kl_mean));
    }
    let seq_scores: Vec<f32> = (0..total)
        .map(|i| token_rewards.row(i).iter().sum())
        .collect();
    let group_of = contiguous_groups(total, n)?;
    let adv_grid = match cfg.algorithm.adv_estimator {
        AdvantageEstimator::Grpo => {
            expand_to_tokens(&advantages::grpo(&seq_scores, &group_of)?, &mask)?
        }
        AdvantageEstimator::DrGrpo => {
            expand_to_tokens(&advantages::dr_grpo(&seq_scores, &group_of)?, &mask)?
        }
        AdvantageEstimator::Rloo => {
            expand_to_tokens(&advantages::rloo(&seq_scores, &group_of)?, &mask)?
        }
        AdvantageEstimator::ReinforcePlusPlus => {
            advantages::reinforce_plus_plus(&token_rewards, &mask, cfg.algorithm.gamma)?.0
        }
        AdvantageEstimator::Gae => {
            let values = grid(
                exp.values.as_ref().context("GAE needs the critic")?,
                &all,
                cols,
            );
            let (adv, ret) = advantages::gae(
                &token_rewards,
                &values,
                &mask,
                cfg.algorithm.gamma,
                cfg.algorithm.lam,
            )?;
            exp.returns = Some(ragged(&ret, &lens));
            adv
        }
    };
    exp.advantages = ragged(&adv_grid, &lens);
    // Optionally keep only groups with a learning signal; with none left, skip the update.
    let mut train_rows = all.clone();
    if cfg.algorithm.drop_zero_adv_groups {
        let signal: Vec<f32> = exp
            .advantages
            .iter()
            .map(|a| a.iter().fold(0f32, |s, x| s.max(x.abs())))
            .collect();
        match drop_zero_advantage_groups(&signal, &group_of)? {
            GroupFilter::Keep {
                rows,
                dropped_groups,
            } => {
                train_rows = rows;
                m.insert("batch/dropped_groups".into(), json!(dropped_groups));
            }
            GroupFilter::SkipStep { dropped_groups } => {
                train_rows.clear();
                m.insert("batch/dropped_groups".into(), json!(dropped_groups));
            }
        }
    }

    // 6 + 7. The update.
    let clock = Instant::now();
    let lr = cfg.schedule().lr_at(step);
    let actor = if train_rows.is_empty() {
        None
    } else {
        Some(update_actor(t, &exp, &train_rows, lr)?)
    };
    let critic_loss = match (&mut t.critic, train_rows.is_empty()) {
        (Some(critic), false) => Some(update_critic(critic, &cfg, &exp, &train_rows, pad)?),
        _ => None,
    };
    let time_update = clock.elapsed().as_secs_f64();

    // Metrics.
    let step_secs = step_start.elapsed().as_secs_f64();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let rewards: Vec<f64> = parts.iter().map(|p| p.total).collect();
    let r_mean = mean(&rewards);
    let r_std = (rewards.iter().map(|r| (r - r_mean).powi(2)).sum::<f64>()
        / rewards.len().max(1) as f64)
        .sqrt();
    let lens_f: Vec<f64> = lens.iter().map(|&l| l as f64).collect();
    let gen_tokens: usize = lens.iter().sum();
    let all_tokens: usize = gen_tokens + exp.prompts.iter().map(Vec::len).sum::<usize>();
    m.insert("step".into(), json!(step + 1));
    m.insert("epoch".into(), json!(t.state.epoch));
    m.insert("reward/mean".into(), json!(r_mean));
    m.insert("reward/std".into(), json!(r_std));
    m.insert(
        "acc/mean".into(),
        json!(mean(
            &correct.iter().map(|&c| c as u8 as f64).collect::<Vec<_>>()
        )),
    );
    if cfg.reward.format_value != 0.0 {
        m.insert(
            "reward/format".into(),
            json!(mean(&parts.iter().map(|p| p.format).collect::<Vec<_>>())),
        );
    }
    if cfg.reward.length_reward {
        m.insert(
            "reward/length".into(),
            json!(mean(&parts.iter().map(|p| p.length).collect::<Vec<_>>())),
        );
    }
    m.insert("response_length/mean".into(), json!(mean(&lens_f)));
    m.insert(
        "response_length/max".into(),
        json!(lens.iter().max().copied().unwrap_or(0)),
    );
    m.insert(
        "response_length/min".into(),
        json!(lens.iter().min().copied().unwrap_or(0)),
    );
    m.insert(
        "response_length/clip_ratio".into(),
        json!(
            finish
                .iter()
                .filter(|&&f| f == FinishReason::Length)
                .count() as f64
                / total as f64
        ),
    );
    m.insert("actor/lr".into(), json!(lr));
    m.insert("actor/skipped".into(), json!(actor.is_none()));
    if let Some(a) = &actor {
        a.write(&mut m);
    }
    if let Some(v) = critic_loss {
        m.insert("critic/vf_loss".into(), json!(v));
    }
    m.insert("time/rollout".into(), json!(time_rollout));
    m.insert("time/reward".into(), json!(time_reward));
    m.insert("time/logprob".into(), json!(time_logprob));
    m.insert("time/update".into(), json!(time_update));
    m.insert("time/step".into(), json!(step_secs));
    m.insert(
        "throughput/gen_tokens_per_s".into(),
        json!(gen_tokens as f64 / time_rollout.max(1e-9)),
    );
    m.insert(
        "throughput/tokens_per_s".into(),
        json!(all_tokens as f64 / step_secs.max(1e-9)),
    );
    t.state.step += 1;
    Ok(m)
}

/// Loss statistics of the actor update, averaged over its optimiser steps.
#[derive(Default)]
struct ActorStats {
    loss: f64,
    pg_loss: f64,
    kl_loss: f64,
    entropy: f64,
    clipfrac: f64,
    approx_kl: f64,
    tokens: f64,
    grad_norm: f64,
    opt_steps: usize,
}

impl ActorStats {
    fn write(&self, m: &mut Map<String, Value>) {
        let k = self.opt_steps.max(1) as f64;
        let tok = self.tokens.max(1.0);
        m.insert("actor/loss".into(), json!(self.loss / k));
        m.insert("actor/pg_loss".into(), json!(self.pg_loss / k));
        m.insert("actor/kl_loss".into(), json!(self.kl_loss / k));
        m.insert("actor/entropy".into(), json!(self.entropy / k));
        m.insert("actor/clipfrac".into(), json!(self.clipfrac / tok));
        m.insert("actor/approx_kl".into(), json!(self.approx_kl / tok));
        m.insert("actor/grad_norm".into(), json!(self.grad_norm / k));
        m.insert("actor/opt_steps".into(), json!(self.opt_steps));
    }
}

/// Micro-batches of one mini-batch: fixed row counts for verl's per-micro-batch token mean
/// (its weighting depends on them), else packed by the token budget.
fn micro_batches(
    exp: &Experience,
    mini: &[usize],
    cfg: &crate::config::TrainConfig,
) -> Vec<Vec<usize>> {
    if cfg.algorithm.loss_agg_mode == LossAgg::MicroBatchTokenMean {
        mini.chunks(cfg.trainer.micro_batch_rows)
            .map(<[usize]>::to_vec)
            .collect()
    } else {
        exp.plan_micro_batches(mini, cfg.trainer.micro_batch_tokens)
    }
}

/// The aggregation scope of a mini-batch (Dr.GRPO's constant normaliser is the max response
/// length, so it does not change with the batch).
fn scope_of(
    exp: &Experience,
    mini: &[usize],
    cfg: &crate::config::TrainConfig,
) -> Result<AggScope> {
    let mask = exp.mask(mini, exp.max_response(mini));
    Ok(AggScope::minibatch(&mask, cfg.trainer.micro_batch_rows)?
        .with_token_sum_norm(cfg.rollout.max_response_length as f64))
}

/// 6 + 7 for the actor: per mini-batch, the loss of each micro-batch (carrying its share of
/// the mini-batch normalisation) is back-propagated and the gradients summed; then one AdamW
/// step with global grad-norm clipping.
fn update_actor(
    t: &mut Trainer,
    exp: &Experience,
    train_rows: &[usize],
    lr: f64,
) -> Result<ActorStats> {
    let cfg = &t.cfg;
    let loss_cfg = cfg.policy_loss();
    let lp_opts = LogprobOptions {
        chunk_rows: cfg.model.logprob_chunk_rows,
        checkpoint_layers: cfg.model.gradient_checkpointing,
    };
    let inject_nan = cfg.debug.nan_loss_at_step == t.state.step + 1;
    let mut stats = ActorStats::default();
    let mini_rows = cfg.trainer.mini_batch_size * cfg.rollout.n;
    for _epoch in 0..cfg.trainer.ppo_epochs {
        for mini in train_rows.chunks(mini_rows) {
            let scope = scope_of(exp, mini, cfg)?;
            let mut acc = t.opt.accumulator();
            for micro in micro_batches(exp, mini, cfg) {
                let (batch, p) = exp.model_batch(&micro, t.policy.pad_id)?;
                let cols = batch.seq_len - p;
                let mask = exp.mask(&micro, cols);
                let adv = grid(&exp.advantages, &micro, cols);
                let old = exp.old_logp.as_ref().map(|o| grid(o, &micro, cols));
                let refp = exp.ref_logp.as_ref().map(|r| grid(r, &micro, cols));
                let mut metrics = None;
                let (loss, grads) = t.policy.model.logprobs_with_grad(
                    &batch,
                    p,
                    cfg.rollout.temperature,
                    &lp_opts,
                    |logp, ent| {
                        // On-policy: the rollout policy is the current one, so its log-probs are
                        // this forward pass's values (ratio exactly 1, gradient unchanged).
                        let current;
                        let old = match &old {
                            Some(o) => o,
                            None => {
                                current = TokenGrid::from_tensor(logp)?;
                                &current
                            }
                        };
                        let inputs = PolicyLossInputs {
                            logp,
                            entropy: Some(ent),
                            old_logp: old,
                            ref_logp: refp.as_ref(),
                            advantages: &adv,
                            mask: &mask,
                        };
                        let out = policy_loss(&inputs, &loss_cfg, &scope)?;
                        metrics = Some(out.metrics);
                        Ok(if inject_nan {
                            (out.loss * f64::NAN)?
                        } else {
                            out.loss
                        })
                    },
                )?;
                if !loss.is_finite() {
                    bail!(NonFinite(format!(
                        "the loss is {loss} at step {}",
                        t.state.step + 1
                    )));
                }
                acc.add(&grads)?;
                let mm = metrics.expect("the loss closure ran");
                stats.loss += mm.loss;
                stats.pg_loss += mm.pg_loss;
                stats.kl_loss += mm.kl_loss;
                stats.entropy += mm.entropy;
                stats.clipfrac += (mm.clipfrac_low + mm.clipfrac_high) * mm.tokens;
                stats.approx_kl += mm.approx_kl * mm.tokens;
                stats.tokens += mm.tokens;
            }
            let s = t.opt.step_accumulated(&acc, lr).map_err(|e| {
                anyhow::Error::new(NonFinite(format!(
                    "the optimiser refused step {}: {e:#}",
                    t.state.step + 1
                )))
            })?;
            stats.grad_norm += s.grad_norm;
            stats.opt_steps += 1;
        }
    }
    // Loss terms were summed over micro-batches per mini-batch; report per optimiser step.
    Ok(stats)
}

/// The critic's clipped value loss, accumulated and stepped like the actor's.
fn update_critic(
    critic: &mut crate::critic::Critic,
    cfg: &crate::config::TrainConfig,
    exp: &Experience,
    train_rows: &[usize],
    pad: u32,
) -> Result<f64> {
    let values = exp
        .values
        .as_ref()
        .context("critic update without values")?;
    let returns = exp
        .returns
        .as_ref()
        .context("critic update without returns")?;
    let mut total = 0.0;
    let mut steps = 0usize;
    for _epoch in 0..cfg.trainer.ppo_epochs {
        for mini in train_rows.chunks(cfg.trainer.mini_batch_size * cfg.rollout.n) {
            let scope = scope_of(exp, mini, cfg)?;
            let mut acc = critic.opt.accumulator();
            for micro in micro_batches(exp, mini, cfg) {
                let (batch, p) = exp.model_batch(&micro, pad)?;
                let cols = batch.seq_len - p;
                let vpreds = critic.values(&batch, p, false)?;
                let inputs = ValueLossInputs {
                    vpreds: &vpreds,
                    old_values: &grid(values, &micro, cols),
                    returns: &grid(returns, &micro, cols),
                    mask: &exp.mask(&micro, cols),
                };
                let (loss, metrics) = value_loss(
                    &inputs,
                    cfg.algorithm.value_clip,
                    cfg.algorithm.loss_agg_mode,
                    &scope,
                )?;
                if !metrics.vf_loss.is_finite() {
                    bail!(NonFinite(format!("the critic loss is {}", metrics.vf_loss)));
                }
                acc.add(&loss.backward()?)?;
                total += metrics.vf_loss;
            }
            critic
                .opt
                .step_accumulated(&acc, cfg.algorithm.critic_lr)
                .map_err(|e| {
                    anyhow::Error::new(NonFinite(format!(
                        "the critic optimiser refused a step: {e:#}"
                    )))
                })?;
            steps += 1;
        }
    }
    Ok(total / steps.max(1) as f64)
}
