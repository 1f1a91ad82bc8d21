//! The actor loss (verl `compute_policy_loss` + KL loss + entropy bonus), differentiable on
//! candle tensors:
//!
//! `loss = agg(pg) + kl_coef * agg(kl) - entropy_coef * agg(H)`
//!
//! with `ratio = exp(logp - old_logp)`, `pg = max(-A * ratio, -A * clip(ratio, 1 - clip_low,
//! 1 + clip_high))` and, with dual-clip constant c, `pg = min(pg, -A * c)` for `A < 0`.
//!
//! Differentiable inputs (`logp`, `entropy`) are tensors `[rows, cols]`; constants (old and
//! reference log-probs, advantages, mask) are host grids. Clipped branches are selected by masks
//! so that a clipped token contributes a constant (zero gradient), which is what torch's
//! max/clamp produce everywhere except on exact ties, where both give the same gradient.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::agg::{agg_weights, aggregate, AggScope, LossAgg};
use crate::grid::TokenGrid;
use crate::kl::{kl_tensor, KlKind};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KlLossConfig {
    pub kind: KlKind,
    pub coef: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolicyLossConfig {
    /// Lower clip range: ratio is clipped below at `1 - clip_low`.
    pub clip_low: f64,
    /// Upper clip range: ratio is clipped above at `1 + clip_high` (DAPO's clip-higher when > low).
    pub clip_high: f64,
    /// Dual-clip constant c > 1 bounding the loss of negative-advantage tokens by `-A * c`.
    pub dual_clip: Option<f64>,
    /// KL-to-reference loss term; `None` when KL is off or applied in the reward instead.
    pub kl: Option<KlLossConfig>,
    pub entropy_coef: f64,
    pub agg: LossAgg,
}

impl Default for PolicyLossConfig {
    /// The paper's GRPO recipe: clip 0.2, k3 KL at 0.001, entropy 0.001, global token mean.
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: None,
            kl: Some(KlLossConfig {
                kind: KlKind::K3,
                coef: 0.001,
            }),
            entropy_coef: 0.001,
            agg: LossAgg::TokenMean,
        }
    }
}

/// Inputs of one (micro-)batch, all `[rows, cols]`.
pub struct PolicyLossInputs<'a> {
    /// Current log-probs of the sampled tokens (differentiable).
    pub logp: &'a Tensor,
    /// Per-token entropy of the current policy (differentiable); needed when entropy_coef != 0.
    pub entropy: Option<&'a Tensor>,
    pub old_logp: &'a TokenGrid,
    /// Reference-model log-probs; needed when the KL loss is on.
    pub ref_logp: Option<&'a TokenGrid>,
    pub advantages: &'a TokenGrid,
    /// 1 on response tokens, 0 on padding.
    pub mask: &'a TokenGrid,
}

/// Scalars for logging. Loss terms use the configured aggregation; the rest are token means
/// over this batch's response tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyLossMetrics {
    pub loss: f64,
    pub pg_loss: f64,
    pub kl_loss: f64,
    pub entropy: f64,
    /// Fraction of tokens whose ratio was clipped at `1 - clip_low` (negative advantage).
    pub clipfrac_low: f64,
    /// Fraction of tokens whose ratio was clipped at `1 + clip_high` (positive advantage).
    pub clipfrac_high: f64,
    /// Fraction of tokens bounded by the dual clip.
    pub dual_clipfrac: f64,
    /// verl's `ppo_kl`: mean of `old_logp - logp`.
    pub approx_kl: f64,
    pub ratio_mean: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    pub tokens: f64,
}

pub struct PolicyLossOutput {
    /// Scalar loss to call `backward` on.
    pub loss: Tensor,
    pub metrics: PolicyLossMetrics,
}

fn check_shape(t: &Tensor, mask: &TokenGrid, what: &str) -> Result<()> {
    let dims = t.dims();
    if dims != [mask.rows, mask.cols] {
        bail!(
            "policy loss: {what} has shape {dims:?}, the mask is [{}, {}]",
            mask.rows,
            mask.cols
        );
    }
    Ok(())
}

/// Computes the actor loss of one (micro-)batch. `scope` holds the totals of the mini-batch it
/// belongs to (`AggScope::whole(mask)` when it is the whole mini-batch).
pub fn policy_loss(
    inp: &PolicyLossInputs,
    cfg: &PolicyLossConfig,
    scope: &AggScope,
) -> Result<PolicyLossOutput> {
    let mask = inp.mask;
    check_shape(inp.logp, mask, "logp")?;
    mask.check_same_shape(inp.old_logp, "policy loss old_logp")?;
    mask.check_same_shape(inp.advantages, "policy loss advantages")?;
    if let Some(c) = cfg.dual_clip {
        if c <= 1.0 {
            bail!("dual_clip constant must be > 1, got {c}");
        }
    }
    let dev = inp.logp.device();
    let logp = inp.logp.to_dtype(DType::F32)?;
    let weights = agg_weights(mask, cfg.agg, scope)?.to_tensor(dev)?;
    let adv = inp.advantages.to_tensor(dev)?;
    let old = inp.old_logp.to_tensor(dev)?;

    let ratio = (&logp - &old)?.exp()?;
    let neg_adv = adv.neg()?;
    let pg_unclipped = neg_adv.mul(&ratio)?;
    let clipped_ratio = ratio
        .detach()
        .clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)?;
    let pg_clipped = neg_adv.mul(&clipped_ratio)?;
    let is_clipped = pg_clipped.gt(&pg_unclipped)?;
    let mut pg = is_clipped.where_cond(&pg_clipped, &pg_unclipped)?;
    let mut dual_active = None;
    if let Some(c) = cfg.dual_clip {
        let bound = neg_adv.affine(c, 0.0)?;
        let active = (adv.lt(0.0)?.to_dtype(DType::F32)? * pg.gt(&bound)?.to_dtype(DType::F32)?)?;
        let active = active.gt(0.5)?;
        pg = active.where_cond(&bound, &pg)?;
        dual_active = Some(active);
    }
    let pg_loss = aggregate(&pg, &weights)?;
    let mut loss = pg_loss.clone();

    let mut kl_loss_val = 0.0;
    if let Some(kl_cfg) = cfg.kl {
        let ref_logp = inp
            .ref_logp
            .context("policy loss: KL loss is on but no ref_logp was given")?;
        mask.check_same_shape(ref_logp, "policy loss ref_logp")?;
        let kl = kl_tensor(&logp, &ref_logp.to_tensor(dev)?, kl_cfg.kind)?;
        let kl_loss = aggregate(&kl, &weights)?;
        kl_loss_val = kl_loss.to_scalar::<f32>()? as f64;
        loss = (loss + (kl_loss * kl_cfg.coef)?)?;
    }

    let mut entropy_val = f64::NAN;
    if let Some(ent) = inp.entropy {
        check_shape(ent, mask, "entropy")?;
        let ent_agg = aggregate(ent, &weights)?;
        entropy_val = ent_agg.to_scalar::<f32>()? as f64;
        if cfg.entropy_coef != 0.0 {
            loss = (loss - (ent_agg * cfg.entropy_coef)?)?;
        }
    } else if cfg.entropy_coef != 0.0 {
        bail!(
            "policy loss: entropy_coef is {} but no entropy was given",
            cfg.entropy_coef
        );
    }

    let metrics = token_metrics(
        &ratio,
        inp.advantages,
        mask,
        cfg,
        dual_active.as_ref(),
        MetricTotals {
            loss: loss.to_scalar::<f32>()? as f64,
            pg_loss: pg_loss.to_scalar::<f32>()? as f64,
            kl_loss: kl_loss_val,
            entropy: entropy_val,
        },
    )?;
    Ok(PolicyLossOutput { loss, metrics })
}

struct MetricTotals {
    loss: f64,
    pg_loss: f64,
    kl_loss: f64,
    entropy: f64,
}

/// Token-mean statistics of the ratio and of the clipping, on the host.
fn token_metrics(
    ratio: &Tensor,
    adv: &TokenGrid,
    mask: &TokenGrid,
    cfg: &PolicyLossConfig,
    dual_active: Option<&Tensor>,
    totals: MetricTotals,
) -> Result<PolicyLossMetrics> {
    let ratio = ratio.flatten_all()?.to_vec1::<f32>()?;
    let dual: Option<Vec<u8>> = match dual_active {
        Some(t) => Some(t.flatten_all()?.to_vec1::<u8>()?),
        None => None,
    };
    let (lo, hi) = (1.0 - cfg.clip_low, 1.0 + cfg.clip_high);
    let mut m = PolicyLossMetrics {
        loss: totals.loss,
        pg_loss: totals.pg_loss,
        kl_loss: totals.kl_loss,
        entropy: totals.entropy,
        ratio_min: f64::INFINITY,
        ratio_max: f64::NEG_INFINITY,
        ..Default::default()
    };
    for k in 0..mask.data.len() {
        if mask.data[k] <= 0.0 {
            continue;
        }
        let (r, a) = (ratio[k] as f64, adv.data[k] as f64);
        m.tokens += 1.0;
        m.ratio_mean += r;
        m.ratio_min = m.ratio_min.min(r);
        m.ratio_max = m.ratio_max.max(r);
        m.approx_kl -= r.ln();
        if a > 0.0 && r > hi {
            m.clipfrac_high += 1.0;
        }
        if a < 0.0 && r < lo {
            m.clipfrac_low += 1.0;
        }
        if dual.as_ref().is_some_and(|d| d[k] != 0) {
            m.dual_clipfrac += 1.0;
        }
    }
    if m.tokens > 0.0 {
        for v in [
            &mut m.ratio_mean,
            &mut m.approx_kl,
            &mut m.clipfrac_high,
            &mut m.clipfrac_low,
            &mut m.dual_clipfrac,
        ] {
            *v /= m.tokens;
        }
    } else {
        m.ratio_min = f64::NAN;
        m.ratio_max = f64::NAN;
    }
    Ok(m)
}

/// Inputs of the critic loss, all `[rows, cols]`.
pub struct ValueLossInputs<'a> {
    /// Current value predictions (differentiable).
    pub vpreds: &'a Tensor,
    /// Values predicted at rollout time.
    pub old_values: &'a TokenGrid,
    pub returns: &'a TokenGrid,
    pub mask: &'a TokenGrid,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueLossMetrics {
    pub vf_loss: f64,
    /// Fraction of tokens where the clipped prediction gave the larger error.
    pub vf_clipfrac: f64,
}

/// PPO clipped value loss (verl `compute_value_loss`):
/// `0.5 * agg(max((v - R)^2, (clip(v, v_old - c, v_old + c) - R)^2))`.
pub fn value_loss(
    inp: &ValueLossInputs,
    clip_range: f64,
    agg: LossAgg,
    scope: &AggScope,
) -> Result<(Tensor, ValueLossMetrics)> {
    let mask = inp.mask;
    check_shape(inp.vpreds, mask, "vpreds")?;
    mask.check_same_shape(inp.old_values, "value loss old_values")?;
    mask.check_same_shape(inp.returns, "value loss returns")?;
    let dev = inp.vpreds.device();
    let v = inp.vpreds.to_dtype(DType::F32)?;
    let old = inp.old_values.to_tensor(dev)?;
    let ret = inp.returns.to_tensor(dev)?;
    // Clipped prediction: outside the band it is the (constant) band edge.
    let band_lo = (&old - clip_range)?;
    let band_hi = (&old + clip_range)?;
    let v_clipped = v.lt(&band_lo)?.where_cond(&band_lo, &v)?;
    let v_clipped = v.gt(&band_hi)?.where_cond(&band_hi, &v_clipped)?;
    let err_unclipped = (&v - &ret)?.sqr()?;
    let err_clipped = (&v_clipped - &ret)?.sqr()?;
    let use_clipped = err_clipped.gt(&err_unclipped)?;
    let per_token = (use_clipped.where_cond(&err_clipped, &err_unclipped)? * 0.5)?;
    let weights = agg_weights(mask, agg, scope)?.to_tensor(dev)?;
    let loss = aggregate(&per_token, &weights)?;

    let flags = use_clipped.flatten_all()?.to_vec1::<u8>()?;
    let (mut clipped, mut tokens) = (0f64, 0f64);
    for (&f, &m) in flags.iter().zip(&mask.data) {
        if m > 0.0 {
            tokens += 1.0;
            clipped += (f != 0) as u8 as f64;
        }
    }
    let metrics = ValueLossMetrics {
        vf_loss: loss.to_scalar::<f32>()? as f64,
        vf_clipfrac: if tokens > 0.0 { clipped / tokens } else { 0.0 },
    };
    Ok((loss, metrics))
}
