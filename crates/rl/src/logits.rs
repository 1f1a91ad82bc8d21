//! From the policy's logits to the per-token quantities the loss needs.

use anyhow::{bail, Result};
use candle_core::Tensor;

/// `logits [rows, cols, V]`, `targets [rows, cols]` (the sampled response tokens) ->
/// `(logp [rows, cols], entropy [rows, cols])` of `softmax(logits / temperature)`, f32 and
/// differentiable w.r.t. the logits (the fused kernel of `oneshot-kernels`). The temperature is
/// the sampling temperature, as verl divides the logits by it before the log-softmax.
pub fn token_logp_entropy(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> Result<(Tensor, Tensor)> {
    let (rows, cols, vocab) = logits.dims3()?;
    if targets.dims() != [rows, cols] {
        bail!(
            "token_logp_entropy: targets {:?} do not match logits [{rows}, {cols}, {vocab}]",
            targets.dims()
        );
    }
    let (logp, entropy) = oneshot_kernels::logprobs_and_entropy(
        &logits.reshape((rows * cols, vocab))?,
        &targets.flatten_all()?,
        temperature,
    )?;
    Ok((logp.reshape((rows, cols))?, entropy.reshape((rows, cols))?))
}
