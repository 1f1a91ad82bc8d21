//! Steps 6 and 7 of the training step: the actor and critic updates. Per mini-batch, the loss
//! of each micro-batch (carrying its share of the mini-batch normalisation) is
//! back-propagated and the gradients summed; then one AdamW step with global grad-norm
//! clipping. A non-finite loss or gradient stops the run before anything is saved.

use anyhow::{bail, Context, Result};
use oneshot_dist::Collective;
use oneshot_rl::loss::{value_loss, ValueLossInputs};
use oneshot_rl::{policy_loss, AggScope, LossAgg, PolicyLossInputs, TokenGrid};

use crate::config::TrainConfig;
use crate::critic::Critic;
use crate::data_parallel as dp;
use crate::experience::{grid, Experience};
use crate::metrics::ActorStats;
use crate::step::logprob_options;
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

/// Micro-batches of one mini-batch: fixed row counts for verl's per-micro-batch token mean
/// (its weighting depends on them), else packed by the token budget.
fn micro_batches(exp: &Experience, mini: &[usize], cfg: &TrainConfig) -> Vec<Vec<usize>> {
    if cfg.algorithm.loss_agg_mode == LossAgg::MicroBatchTokenMean {
        mini.chunks(cfg.trainer.micro_batch_rows)
            .map(<[usize]>::to_vec)
            .collect()
    } else {
        exp.plan_micro_batches(mini, cfg.trainer.micro_batch_tokens)
    }
}

/// The aggregation scope of a mini-batch (Dr.GRPO's constant normaliser is the max response
/// length, so it does not change with the batch); its counts are summed over the ranks that
/// share the mini-batch.
fn scope_of(
    dist: &dyn Collective,
    exp: &Experience,
    mini: &[usize],
    cfg: &TrainConfig,
) -> Result<AggScope> {
    let mask = exp.mask(mini, exp.max_response(mini));
    let local = AggScope::minibatch(&mask, cfg.trainer.micro_batch_rows)?
        .with_token_sum_norm(cfg.rollout.max_response_length as f64);
    dp::global_scope(dist, local)
}

/// Loss terms summed over micro-batches (per optimiser step) and tokens.
#[derive(Default)]
struct ActorSums {
    loss: f64,
    pg_loss: f64,
    kl_loss: f64,
    entropy: f64,
    clipped_tokens: f64,
    approx_kl_tokens: f64,
    tokens: f64,
    grad_norm: f64,
    opt_steps: usize,
}

impl ActorSums {
    fn add(&mut self, m: &oneshot_rl::PolicyLossMetrics) {
        self.loss += m.loss;
        self.pg_loss += m.pg_loss;
        self.kl_loss += m.kl_loss;
        self.entropy += m.entropy;
        self.clipped_tokens += (m.clipfrac_low + m.clipfrac_high) * m.tokens;
        self.approx_kl_tokens += m.approx_kl * m.tokens;
        self.tokens += m.tokens;
    }

    /// Sums the loss terms and token counts over ranks (each rank's losses carry their share
    /// of the global normalisation, so the sum is the batch's).
    fn sum_over(&mut self, dist: &dyn Collective) -> Result<()> {
        let mut v = [
            self.loss,
            self.pg_loss,
            self.kl_loss,
            self.entropy,
            self.clipped_tokens,
            self.approx_kl_tokens,
            self.tokens,
        ];
        dp::sum_scalars(dist, &mut v)?;
        [
            self.loss,
            self.pg_loss,
            self.kl_loss,
            self.entropy,
            self.clipped_tokens,
            self.approx_kl_tokens,
            self.tokens,
        ] = v;
        Ok(())
    }

    /// Averages per optimiser step (loss terms) and per token (clip fraction, approx KL).
    fn stats(&self) -> ActorStats {
        let k = self.opt_steps.max(1) as f64;
        let tok = self.tokens.max(1.0);
        ActorStats {
            loss: self.loss / k,
            pg_loss: self.pg_loss / k,
            kl_loss: self.kl_loss / k,
            entropy: self.entropy / k,
            clipfrac: self.clipped_tokens / tok,
            approx_kl: self.approx_kl_tokens / tok,
            grad_norm: self.grad_norm / k,
            opt_steps: self.opt_steps,
        }
    }
}

/// Step 6: The actor: the policy loss on temperature-scaled log-probs, `ppo_epochs` passes over
/// mini-batches of `mini_batch_size` rows.
pub fn update_actor(
    t: &mut Trainer,
    exp: &Experience,
    train_rows: &[usize],
    lr: f64,
) -> Result<ActorStats> {
    let cfg = &t.cfg;
    let loss_cfg = cfg.policy_loss();
    let lp_opts = logprob_options(cfg);
    let inject_nan = cfg.debug.nan_loss_at_step == t.state.step + 1;
    let mut sums = ActorSums::default();
    let mini_rows = cfg.trainer.mini_batch_size * cfg.rollout.n;
    let dist = t.dist.clone();
    let minis = dp::local_minibatches(dist.as_ref(), train_rows, mini_rows)?;
    for _epoch in 0..cfg.trainer.ppo_epochs {
        for mini in &minis {
            let scope = scope_of(dist.as_ref(), exp, mini, cfg)?;
            let mut acc = t.opt.accumulator();
            for micro in micro_batches(exp, mini, cfg) {
                let (batch, p) = exp.model_batch(&micro, t.policy.pad_id)?;
                let cols = batch.seq_len - p;
                let mask = exp.mask(&micro, cols);
                let adv = grid(&exp.advantages, &micro, cols);
                let old = exp.old_logp.as_ref().map(|o| grid(o, &micro, cols));
                let refp = exp.ref_logp.as_ref().map(|r| grid(r, &micro, cols));
                let mut metrics = None;
                let temperature = cfg.rollout.temperature;
                let model = &t.policy.model;
                let (loss, grads) =
                    model.logprobs_with_grad(&batch, p, temperature, &lp_opts, |logp, ent| {
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
                    })?;
                if !loss.is_finite() {
                    bail!(NonFinite(format!(
                        "the loss is {loss} at step {}",
                        t.state.step + 1
                    )));
                }
                acc.add(&grads)?;
                sums.add(&metrics.expect("the loss closure ran"));
            }
            let s = dp::step_synced(dist.as_ref(), &mut t.opt, &acc, lr).map_err(|e| {
                let step = t.state.step + 1;
                anyhow::Error::new(NonFinite(format!(
                    "the optimiser refused step {step}: {e:#}"
                )))
            })?;
            sums.grad_norm += s.grad_norm;
            sums.opt_steps += 1;
        }
    }
    sums.sum_over(dist.as_ref())?;
    Ok(sums.stats())
}

/// Step 7: The critic's clipped value loss, accumulated and stepped like the actor's; returns the
/// mean value loss per optimiser step.
pub fn update_critic(
    dist: &dyn Collective,
    critic: &mut Critic,
    cfg: &TrainConfig,
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
    let mini_rows = cfg.trainer.mini_batch_size * cfg.rollout.n;
    let minis = dp::local_minibatches(dist, train_rows, mini_rows)?;
    for _epoch in 0..cfg.trainer.ppo_epochs {
        for mini in &minis {
            let scope = scope_of(dist, exp, mini, cfg)?;
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
                let agg = cfg.algorithm.loss_agg_mode;
                let (loss, metrics) = value_loss(&inputs, cfg.algorithm.value_clip, agg, &scope)?;
                if !metrics.vf_loss.is_finite() {
                    bail!(NonFinite(format!("the critic loss is {}", metrics.vf_loss)));
                }
                acc.add(&loss.backward()?)?;
                total += metrics.vf_loss;
            }
            dp::step_synced(dist, &mut critic.opt, &acc, cfg.algorithm.critic_lr).map_err(|e| {
                let msg = format!("the critic optimiser refused a step: {e:#}");
                anyhow::Error::new(NonFinite(msg))
            })?;
            steps += 1;
        }
    }
    let mut v = [total];
    dp::sum_scalars(dist, &mut v)?;
    Ok(v[0] / steps.max(1) as f64)
}
