//! KL estimators between the policy and the frozen reference (verl `kl_penalty`), per token:
//! - k1 (`kl`): `logp - ref`
//! - k2 (`mse`): `0.5 * (logp - ref)^2`
//! - k3 (`low_var_kl`): `exp(ref - logp) - (ref - logp) - 1`, clamped to [-10, 10]
//!
//! Two uses: as a loss term on differentiable log-probs (`kl_tensor`), and "KL in reward", where
//! the penalty is subtracted from the token rewards before advantage estimation (`kl_in_reward`).

use anyhow::Result;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::grid::TokenGrid;

/// verl clamps the k3 estimate to this magnitude for stability.
pub const LOW_VAR_KL_CLAMP: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlKind {
    /// k1: `logp - ref`.
    #[serde(alias = "kl")]
    K1,
    /// k2: `0.5 * (logp - ref)^2`.
    #[serde(alias = "mse")]
    K2,
    /// k3: `exp(ref - logp) - (ref - logp) - 1`, clamped.
    #[serde(alias = "low_var_kl")]
    K3,
}

/// Per-token KL estimate on tensors, differentiable w.r.t. `logp` (and `ref_logp`).
/// The k3 clamp has zero gradient where it is active, as torch.clamp.
pub fn kl_tensor(logp: &Tensor, ref_logp: &Tensor, kind: KlKind) -> Result<Tensor> {
    let logp = logp.to_dtype(DType::F32)?;
    let ref_logp = ref_logp.to_dtype(DType::F32)?;
    Ok(match kind {
        KlKind::K1 => (&logp - &ref_logp)?,
        KlKind::K2 => ((&logp - &ref_logp)?.sqr()? * 0.5)?,
        KlKind::K3 => {
            let x = (&ref_logp - &logp)?;
            let kl = ((x.exp()? - &x)? - 1.0)?;
            // Clamp via masks so the clamped entries are constants (no gradient), and the
            // others keep theirs untouched (candle's clamp halves gradients on ties).
            let hi = Tensor::full(LOW_VAR_KL_CLAMP as f32, kl.shape(), kl.device())?;
            let lo = Tensor::full(-LOW_VAR_KL_CLAMP as f32, kl.shape(), kl.device())?;
            let kl = kl.gt(LOW_VAR_KL_CLAMP)?.where_cond(&hi, &kl)?;
            kl.lt(-LOW_VAR_KL_CLAMP)?.where_cond(&lo, &kl)?
        }
    })
}

/// Per-token KL estimate on host values (for KL-in-reward).
pub fn kl_value(logp: f32, ref_logp: f32, kind: KlKind) -> f32 {
    let d = (logp - ref_logp) as f64;
    let v = match kind {
        KlKind::K1 => d,
        KlKind::K2 => 0.5 * d * d,
        KlKind::K3 => {
            let x = -d;
            (x.exp() - x - 1.0).clamp(-LOW_VAR_KL_CLAMP, LOW_VAR_KL_CLAMP)
        }
    };
    v as f32
}

/// "KL in reward" (verl `apply_kl_penalty`): `rewards_t = scores_t - beta * kl(old_logp_t, ref_t)`
/// on response tokens. Returns the shaped rewards and the masked mean KL (for logging and for an
/// adaptive controller).
pub fn kl_in_reward(
    token_scores: &TokenGrid,
    old_logp: &TokenGrid,
    ref_logp: &TokenGrid,
    mask: &TokenGrid,
    kind: KlKind,
    beta: f32,
) -> Result<(TokenGrid, f32)> {
    mask.check_same_shape(token_scores, "kl_in_reward scores")?;
    mask.check_same_shape(old_logp, "kl_in_reward old_logp")?;
    mask.check_same_shape(ref_logp, "kl_in_reward ref_logp")?;
    let mut out = token_scores.clone();
    let (mut kl_sum, mut count) = (0f64, 0f64);
    for k in 0..mask.data.len() {
        let kl = kl_value(old_logp.data[k], ref_logp.data[k], kind) * mask.data[k];
        out.data[k] -= beta * kl;
        kl_sum += kl as f64;
        count += mask.data[k] as f64;
    }
    let mean = if count > 0.0 { kl_sum / count } else { 0.0 };
    Ok((out, mean as f32))
}
