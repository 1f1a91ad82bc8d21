//! Loss aggregation: how a `[rows, cols]` matrix of per-token losses becomes one scalar.
//!
//! Every mode is a weighted sum `sum_bt w_bt * loss_bt` with constant weights built from the
//! mask, so micro-batches of one mini-batch can each be aggregated with the mini-batch's totals
//! (`AggScope`) and their gradients summed to the mini-batch gradient exactly.
//!
//! | mode | weight of a response token of row b |
//! |---|---|
//! | `token-mean` (default) | 1 / tokens in the mini-batch |
//! | `seq-mean-token-mean` | 1 / (tokens of row b * rows in the mini-batch) |
//! | `seq-mean-token-sum` | 1 / rows in the mini-batch |
//! | `seq-mean-token-sum-norm` (Dr.GRPO) | 1 / (norm * rows in the mini-batch) |
//! | `micro-batch-token-mean` (verl 0.2) | 1 / (tokens in its micro-batch * micro-batches) |
//!
//! "Rows" counts rows with at least one response token. The last mode reproduces verl 0.2,
//! which takes the token mean inside each micro-batch and scales each micro-batch's loss by
//! 1/grad_accum; it weights tokens of short micro-batches more (a known verl bug), so it is
//! offered for exact reproduction only.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::grid::TokenGrid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossAgg {
    #[default]
    TokenMean,
    SeqMeanTokenMean,
    SeqMeanTokenSum,
    SeqMeanTokenSumNorm,
    MicroBatchTokenMean,
}

/// Totals of the mini-batch a (micro-)batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggScope {
    /// Response tokens in the whole mini-batch.
    pub tokens: f64,
    /// Rows with at least one response token in the whole mini-batch.
    pub seqs: f64,
    /// Rows per micro-batch (verl's `ppo_micro_batch_size`); `micro-batch-token-mean` takes the
    /// token mean over consecutive runs of this many rows of whatever batch it is given.
    pub micro_batch_rows: usize,
    /// Micro-batches in the mini-batch (verl's gradient-accumulation steps).
    pub micro_batches: usize,
    /// Constant normaliser of `seq-mean-token-sum-norm` (Dr.GRPO uses the max response length).
    pub token_sum_norm: f64,
}

impl AggScope {
    /// Scope of a batch that is the whole mini-batch and one micro-batch; the Dr.GRPO
    /// normaliser defaults to the padded response length, as verl's.
    pub fn whole(mask: &TokenGrid) -> Self {
        let counts = mask.row_counts();
        Self {
            tokens: mask.data.iter().map(|&m| m as f64).sum(),
            seqs: counts.iter().filter(|&&c| c > 0).count() as f64,
            micro_batch_rows: mask.rows.max(1),
            micro_batches: 1,
            token_sum_norm: mask.cols as f64,
        }
    }

    /// Scope of a mini-batch whose full mask is `mask`, processed in micro-batches of
    /// `micro_batch_rows` rows (the last one may be shorter).
    pub fn minibatch(mask: &TokenGrid, micro_batch_rows: usize) -> Result<Self> {
        if micro_batch_rows == 0 {
            bail!("AggScope: micro_batch_rows must be at least 1");
        }
        Ok(Self {
            micro_batch_rows,
            micro_batches: mask.rows.div_ceil(micro_batch_rows).max(1),
            ..Self::whole(mask)
        })
    }

    pub fn with_token_sum_norm(mut self, norm: f64) -> Self {
        self.token_sum_norm = norm;
        self
    }
}

/// Per-token aggregation weights for `mask`, a micro-batch (or several consecutive ones, or
/// the whole) of the scope's mini-batch.
pub fn agg_weights(mask: &TokenGrid, agg: LossAgg, scope: &AggScope) -> Result<TokenGrid> {
    if agg == LossAgg::SeqMeanTokenSumNorm && scope.token_sum_norm <= 0.0 {
        bail!(
            "seq-mean-token-sum-norm needs a positive normaliser, got {}",
            scope.token_sum_norm
        );
    }
    if scope.micro_batch_rows == 0 {
        bail!("AggScope: micro_batch_rows must be at least 1");
    }
    let counts = mask.row_counts();
    // Tokens of the micro-batch each row belongs to (for verl 0.2's per-micro-batch mean).
    let micro_tokens: Vec<f64> = counts
        .chunks(scope.micro_batch_rows)
        .flat_map(|c| {
            let total: usize = c.iter().sum();
            std::iter::repeat_n(total as f64, c.len())
        })
        .collect();
    let mut w = TokenGrid::zeros(mask.rows, mask.cols);
    for (i, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let row_weight = match agg {
            LossAgg::TokenMean => 1.0 / scope.tokens,
            LossAgg::SeqMeanTokenMean => 1.0 / (count as f64 * scope.seqs),
            LossAgg::SeqMeanTokenSum => 1.0 / scope.seqs,
            LossAgg::SeqMeanTokenSumNorm => 1.0 / (scope.token_sum_norm * scope.seqs),
            LossAgg::MicroBatchTokenMean => 1.0 / (micro_tokens[i] * scope.micro_batches as f64),
        };
        for (o, &m) in w.row_mut(i).iter_mut().zip(mask.row(i)) {
            *o = (row_weight * m as f64) as f32;
        }
    }
    Ok(w)
}

/// Aggregates a per-token loss tensor with precomputed weights (from `agg_weights`).
pub fn aggregate(loss_mat: &Tensor, weights: &Tensor) -> Result<Tensor> {
    Ok((loss_mat.to_dtype(DType::F32)? * weights)?.sum_all()?)
}
