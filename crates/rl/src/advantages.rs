//! Advantage estimators, following verl's `core_algos` formulas.
//!
//! Outcome estimators (GRPO, Dr.GRPO, RLOO) turn one scalar score per response into one advantage
//! per response; `expand_to_tokens` then copies it onto every response token. Token estimators
//! (REINFORCE++, GAE) work on per-token rewards directly. Statistics are computed in f64.
//!
//! Groups: `group_of[i]` names the group of response `i` (verl's `uid`). In the paper's recipe each
//! of the 128 prompt rows is its own group of its n = 8 rollouts, even though the 128 rows hold
//! the same problem; `contiguous_groups` builds exactly that labelling.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::grid::TokenGrid;

/// verl's epsilon in `(r - mean) / (std + eps)`.
pub const GRPO_EPS: f64 = 1e-6;
/// verl's epsilon in `masked_whiten`: `(x - mean) * rsqrt(var + eps)`.
pub const WHITEN_EPS: f64 = 1e-8;

/// Which estimator a run uses (names as in verl's `algorithm.adv_estimator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageEstimator {
    Grpo,
    DrGrpo,
    Rloo,
    ReinforcePlusPlus,
    Gae,
}

/// Group labels for `rows` responses laid out as consecutive runs of `n` rollouts per prompt.
#[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; the MSRV is 1.85
pub fn contiguous_groups(rows: usize, n: usize) -> Result<Vec<usize>> {
    if n == 0 || rows % n != 0 {
        bail!("contiguous_groups: {rows} responses cannot be split into groups of {n}");
    }
    Ok((0..rows).map(|i| i / n).collect())
}

/// Per-group member lists, in first-seen order of members.
fn members_by_group(group_of: &[usize]) -> BTreeMap<usize, Vec<usize>> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &g) in group_of.iter().enumerate() {
        groups.entry(g).or_default().push(i);
    }
    groups
}

fn check_lengths(scores: &[f32], group_of: &[usize], who: &str) -> Result<()> {
    if scores.len() != group_of.len() {
        bail!(
            "{who}: {} scores but {} group labels",
            scores.len(),
            group_of.len()
        );
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        bail!("{who}: score of response {i} is not finite ({})", scores[i]);
    }
    Ok(())
}

/// True when every value is bit-for-bit the same; then the centred value is exactly zero
/// (floating-point means of equal numbers can be off by an ulp, which the std division of a
/// zero-variance group would blow up).
fn all_equal(vals: &[f64]) -> bool {
    vals.windows(2).all(|w| w[0] == w[1])
}

/// Group mean and unbiased standard deviation; a group of one gets mean 0 and std 1, as in verl.
fn group_stats(vals: &[f64]) -> (f64, f64) {
    if vals.len() == 1 {
        return (0.0, 1.0);
    }
    let n = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / n;
    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Shared body of GRPO / Dr.GRPO: centre on the group mean, optionally divide by std + eps.
fn group_normalised(scores: &[f32], group_of: &[usize], divide_by_std: bool) -> Vec<f32> {
    let mut out = vec![0f32; scores.len()];
    for members in members_by_group(group_of).values() {
        let vals: Vec<f64> = members.iter().map(|&i| scores[i] as f64).collect();
        if vals.len() > 1 && all_equal(&vals) {
            continue; // zero advantage, and no 0/eps noise
        }
        let (mean, std) = group_stats(&vals);
        for (&i, v) in members.iter().zip(&vals) {
            let centred = v - mean;
            out[i] = if divide_by_std {
                centred / (std + GRPO_EPS)
            } else {
                centred
            } as f32;
        }
    }
    out
}

/// GRPO: `A_i = (r_i - mean_g) / (std_g + 1e-6)`, unbiased std over the group of `i`.
pub fn grpo(scores: &[f32], group_of: &[usize]) -> Result<Vec<f32>> {
    check_lengths(scores, group_of, "grpo")?;
    Ok(group_normalised(scores, group_of, true))
}

/// Dr.GRPO: `A_i = r_i - mean_g` (no std division; a group of one keeps its raw score).
pub fn dr_grpo(scores: &[f32], group_of: &[usize]) -> Result<Vec<f32>> {
    check_lengths(scores, group_of, "dr_grpo")?;
    Ok(group_normalised(scores, group_of, false))
}

/// RLOO: `A_i = r_i - mean of the other members = n/(n-1) * (r_i - mean_g)`; a group of one
/// keeps its raw score (verl leaves it unchanged).
pub fn rloo(scores: &[f32], group_of: &[usize]) -> Result<Vec<f32>> {
    check_lengths(scores, group_of, "rloo")?;
    let mut out: Vec<f32> = scores.to_vec();
    for members in members_by_group(group_of).values() {
        let n = members.len();
        if n < 2 {
            continue;
        }
        let vals: Vec<f64> = members.iter().map(|&i| scores[i] as f64).collect();
        if all_equal(&vals) {
            members.iter().for_each(|&i| out[i] = 0.0);
            continue;
        }
        let mean = vals.iter().sum::<f64>() / n as f64;
        let scale = n as f64 / (n as f64 - 1.0);
        for (&i, v) in members.iter().zip(&vals) {
            out[i] = (scale * (v - mean)) as f32;
        }
    }
    Ok(out)
}

/// Copies one advantage per response onto each of its response tokens (zero on padding).
pub fn expand_to_tokens(seq_values: &[f32], mask: &TokenGrid) -> Result<TokenGrid> {
    if seq_values.len() != mask.rows {
        bail!(
            "expand_to_tokens: {} values for {} mask rows",
            seq_values.len(),
            mask.rows
        );
    }
    let mut out = TokenGrid::zeros(mask.rows, mask.cols);
    for (i, &a) in seq_values.iter().enumerate() {
        for (o, &m) in out.row_mut(i).iter_mut().zip(mask.row(i)) {
            *o = a * m;
        }
    }
    Ok(out)
}

/// Token rewards for an outcome score: the score sits on the last response token of each row
/// (as verl's reward manager writes it), zero elsewhere. A row with no response token gets none.
pub fn outcome_token_rewards(scores: &[f32], mask: &TokenGrid) -> Result<TokenGrid> {
    if scores.len() != mask.rows {
        bail!(
            "outcome_token_rewards: {} scores for {} mask rows",
            scores.len(),
            mask.rows
        );
    }
    let mut out = TokenGrid::zeros(mask.rows, mask.cols);
    for (i, &s) in scores.iter().enumerate() {
        if let Some(last) = mask.row(i).iter().rposition(|&m| m > 0.0) {
            out.row_mut(i)[last] = s;
        }
    }
    Ok(out)
}

/// Mean over masked entries (0 for an empty mask).
fn masked_mean(values: &TokenGrid, mask: &TokenGrid) -> (f64, f64) {
    let (mut sum, mut count) = (0f64, 0f64);
    for (&v, &m) in values.data.iter().zip(&mask.data) {
        sum += v as f64 * m as f64;
        count += m as f64;
    }
    (if count > 0.0 { sum / count } else { 0.0 }, count)
}

/// verl's `masked_whiten`: `(x - mean) * rsqrt(var + 1e-8)` with masked mean and unbiased masked
/// variance over the whole grid. Fewer than two masked entries, or all masked entries equal,
/// give zeros (verl raises on a one-token mask; zero is the only finite centred value).
/// Unmasked entries are set to zero.
pub fn masked_whiten(values: &TokenGrid, mask: &TokenGrid) -> Result<TokenGrid> {
    mask.check_same_shape(values, "masked_whiten values")?;
    let mut out = TokenGrid::zeros(values.rows, values.cols);
    let masked: Vec<f64> = values
        .data
        .iter()
        .zip(&mask.data)
        .filter(|(_, &m)| m > 0.0)
        .map(|(&v, _)| v as f64)
        .collect();
    if masked.len() < 2 || all_equal(&masked) {
        return Ok(out);
    }
    let (mean, count) = masked_mean(values, mask);
    let mut sq = 0f64;
    for (&v, &m) in values.data.iter().zip(&mask.data) {
        sq += (v as f64 - mean).powi(2) * m as f64;
    }
    let var = sq / count * (count / (count - 1.0));
    let inv = 1.0 / (var + WHITEN_EPS).sqrt();
    for ((o, &v), &m) in out.data.iter_mut().zip(&values.data).zip(&mask.data) {
        *o = ((v as f64 - mean) * inv * m as f64) as f32;
    }
    Ok(out)
}

/// REINFORCE++ (verl `compute_reinforce_plus_plus_outcome_advantage`): discounted return
/// `G_t = r_t + gamma * G_{t+1}` per token (the running return is reset after padding), then
/// whitened over every response token of the batch. `token_rewards` normally hold the outcome
/// score on the last token minus the KL penalty on every token (see `kl::kl_in_reward`).
/// Returns `(advantages, returns)`.
pub fn reinforce_plus_plus(
    token_rewards: &TokenGrid,
    mask: &TokenGrid,
    gamma: f32,
) -> Result<(TokenGrid, TokenGrid)> {
    mask.check_same_shape(token_rewards, "reinforce_plus_plus rewards")?;
    let mut returns = TokenGrid::zeros(mask.rows, mask.cols);
    for i in 0..mask.rows {
        let (r, m) = (token_rewards.row(i), mask.row(i));
        let out = returns.row_mut(i);
        let mut running = 0f32;
        for t in (0..mask.cols).rev() {
            running = r[t] + gamma * running;
            out[t] = running;
            running *= m[t];
        }
    }
    let adv = masked_whiten(&returns, mask)?;
    Ok((adv, returns))
}

/// PPO's generalised advantage estimate (verl `compute_gae_advantage_return`):
/// `delta_t = r_t + gamma * V_{t+1} - V_t`, `A_t = delta_t + gamma * lam * A_{t+1}`,
/// returns = A + V, then A is whitened over the batch's response tokens. Values are masked
/// first (verl's critic zeroes values on padding), so the bootstrap past the last token is 0.
/// Returns `(advantages, returns)`.
pub fn gae(
    token_rewards: &TokenGrid,
    values: &TokenGrid,
    mask: &TokenGrid,
    gamma: f32,
    lam: f32,
) -> Result<(TokenGrid, TokenGrid)> {
    mask.check_same_shape(token_rewards, "gae rewards")?;
    mask.check_same_shape(values, "gae values")?;
    let mut adv = TokenGrid::zeros(mask.rows, mask.cols);
    let mut returns = TokenGrid::zeros(mask.rows, mask.cols);
    for i in 0..mask.rows {
        let (r, v, m) = (token_rewards.row(i), values.row(i), mask.row(i));
        let mut last_gae = 0f32;
        for t in (0..mask.cols).rev() {
            let next_v = if t + 1 < mask.cols {
                v[t + 1] * m[t + 1]
            } else {
                0.0
            };
            let delta = r[t] + gamma * next_v - v[t] * m[t];
            last_gae = delta + gamma * lam * last_gae;
            adv.row_mut(i)[t] = last_gae;
            returns.row_mut(i)[t] = last_gae + v[t] * m[t];
        }
    }
    let whitened = masked_whiten(&adv, mask)?;
    Ok((whitened, returns))
}

/// What an estimator reads: the token rewards (the outcome score on the last token, minus the
/// KL penalty when KL is in the reward), the response mask, the group of each response, and
/// for GAE the critic's values.
pub struct AdvantageInputs<'a> {
    pub token_rewards: &'a TokenGrid,
    pub mask: &'a TokenGrid,
    pub group_of: &'a [usize],
    pub values: Option<&'a TokenGrid>,
    pub gamma: f64,
    pub lam: f64,
}

/// Per-token advantages, and the returns the critic regresses on (GAE only).
pub struct Advantages {
    pub advantages: TokenGrid,
    pub returns: Option<TokenGrid>,
}

impl AdvantageEstimator {
    /// Runs the estimator. Outcome estimators (GRPO, Dr.GRPO, RLOO) score each response by its
    /// summed token rewards (the outcome score unless KL is in the reward) and copy the
    /// advantage onto every token; REINFORCE++ and GAE work per token.
    pub fn compute(self, inp: &AdvantageInputs) -> Result<Advantages> {
        let outcome = |f: fn(&[f32], &[usize]) -> Result<Vec<f32>>| -> Result<Advantages> {
            let scores: Vec<f32> = (0..inp.mask.rows)
                .map(|i| inp.token_rewards.row(i).iter().sum())
                .collect();
            Ok(Advantages {
                advantages: expand_to_tokens(&f(&scores, inp.group_of)?, inp.mask)?,
                returns: None,
            })
        };
        match self {
            AdvantageEstimator::Grpo => outcome(grpo),
            AdvantageEstimator::DrGrpo => outcome(dr_grpo),
            AdvantageEstimator::Rloo => outcome(rloo),
            AdvantageEstimator::ReinforcePlusPlus => {
                let (adv, _) = reinforce_plus_plus(inp.token_rewards, inp.mask, inp.gamma as f32)?;
                Ok(Advantages {
                    advantages: adv,
                    returns: None,
                })
            }
            AdvantageEstimator::Gae => {
                let Some(values) = inp.values else {
                    bail!("the GAE estimator needs the critic's values");
                };
                let (adv, ret) = gae(
                    inp.token_rewards,
                    values,
                    inp.mask,
                    inp.gamma as f32,
                    inp.lam as f32,
                )?;
                Ok(Advantages {
                    advantages: adv,
                    returns: Some(ret),
                })
            }
        }
    }

    /// Whether the estimator needs a critic.
    pub fn needs_critic(self) -> bool {
        self == AdvantageEstimator::Gae
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_groups_rejects_ragged_split() {
        assert!(contiguous_groups(10, 4).is_err());
        assert_eq!(contiguous_groups(6, 3).unwrap(), vec![0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        let err = grpo(&[1.0, 0.0], &[0]).unwrap_err().to_string();
        assert!(err.contains("2 scores but 1 group"), "{err}");
        let err = rloo(&[f32::NAN], &[0]).unwrap_err().to_string();
        assert!(err.contains("response 0"), "{err}");
    }
}
