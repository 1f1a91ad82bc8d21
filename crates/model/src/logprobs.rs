//! Per-token log-probabilities and entropies of response tokens under temperature-scaled
//! logits, for padded (prompt | response) batches.
//!
//! The output head runs on the rows of real response tokens only, in chunks of `chunk_rows`,
//! so at most one `[chunk_rows, vocab]` block of logits is alive at a time in the detached
//! paths and in [`Model::logprobs_with_grad`].
use crate::batch::Batch;
use crate::layers::MatmulPrecision;
use crate::model::Model;
use crate::recompute;
use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct LogprobOptions {
    /// Rows of `[rows, vocab]` logits computed at once.
    pub chunk_rows: usize,
    /// Recompute each layer in the backward pass instead of keeping its activations
    /// (only [`Model::logprobs_with_grad`] uses it).
    pub recompute_layers: bool,
}

impl Default for LogprobOptions {
    fn default() -> Self {
        Self {
            chunk_rows: 256,
            recompute_layers: false,
        }
    }
}

/// Which rows of the flattened hidden states predict which response tokens.
pub(crate) struct ResponseRows {
    /// Index into `[b * seq_len]` of the position whose logits predict each token.
    pub hidden_idx: Tensor,
    /// The predicted token ids `[n]`.
    pub targets: Tensor,
    /// Index into `[b * resp_len]` of each token (for scattering results back).
    pub out_idx: Tensor,
    pub n: usize,
    pub b: usize,
    pub resp_len: usize,
}

impl ResponseRows {
    pub fn new(batch: &Batch, response_start: usize, device: &candle_core::Device) -> Result<Self> {
        let (b, t) = (batch.batch, batch.seq_len);
        if response_start == 0 || response_start >= t {
            bail!("response_start must be in 1..{t} (seq_len), got {response_start}");
        }
        let resp_len = t - response_start;
        let (mut hidden, mut targets, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..b {
            for j in 0..resp_len {
                let pos = i * t + response_start + j;
                if batch.attention_mask[pos] != 0 {
                    hidden.push((pos - 1) as u32);
                    targets.push(batch.input_ids[pos]);
                    out.push((i * resp_len + j) as u32);
                }
            }
        }
        let n = hidden.len();
        Ok(Self {
            hidden_idx: Tensor::from_vec(hidden, n, device)?,
            targets: Tensor::from_vec(targets, n, device)?,
            out_idx: Tensor::from_vec(out, n, device)?,
            n,
            b,
            resp_len,
        })
    }

    /// Place per-row values `[n]` into a zero-filled `[b, resp_len]` (differentiable).
    pub fn scatter(&self, vals: &Tensor) -> Result<Tensor> {
        let zeros = Tensor::zeros(self.b * self.resp_len, DType::F32, vals.device())?;
        let full = if self.n == 0 {
            zeros
        } else {
            zeros.index_add(&self.out_idx, vals, 0)?
        };
        Ok(full.reshape((self.b, self.resp_len))?)
    }

    /// Values at the response rows of a `[b, resp_len]` tensor: `[n]`.
    pub fn gather(&self, full: &Tensor) -> Result<Tensor> {
        Ok(full.flatten_all()?.index_select(&self.out_idx, 0)?)
    }
}

/// Log-probs and entropies `[n]` (f32) of `targets` for hidden rows `h` `[n, hidden]`,
/// computing the logits `chunk_rows` rows at a time.
pub(crate) fn head_logprobs(
    h: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    temperature: f64,
    chunk_rows: usize,
    matmul: MatmulPrecision,
    copy: Option<&oneshot_kernels::Bf16Weight>,
) -> Result<(Tensor, Tensor)> {
    let n = h.dim(0)?;
    let chunk = chunk_rows.max(1);
    let (mut lps, mut ents) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(chunk) {
        let len = chunk.min(n - start);
        let logits = crate::layers::project_with(&h.narrow(0, start, len)?, lm_head, matmul, copy)?;
        let (lp, en) = oneshot_kernels::logprobs_and_entropy(
            &logits,
            &targets.narrow(0, start, len)?,
            temperature,
        )?;
        lps.push(lp);
        ents.push(en);
    }
    Ok((Tensor::cat(&lps, 0)?, Tensor::cat(&ents, 0)?))
}

/// A bf16 copy of the output head when its chunks multiply in bf16 (made once per pass).
pub(crate) fn head_copy(
    lm_head: &Tensor,
    matmul: MatmulPrecision,
    rows: usize,
) -> Result<Option<oneshot_kernels::Bf16Weight>> {
    if matmul == MatmulPrecision::Bf16 && rows > 0 {
        return Ok(Some(oneshot_kernels::Bf16Weight::new(lm_head)?));
    }
    Ok(None)
}

impl Model {
    /// Log-probs and entropies `[b, seq_len - response_start]` (f32) of the response tokens
    /// (positions `response_start..` of each row) under `softmax(logits / temperature)`;
    /// 0 at padding. No autograd graph is built.
    pub fn token_logprobs(
        &self,
        batch: &Batch,
        response_start: usize,
        temperature: f64,
        opts: &LogprobOptions,
    ) -> Result<(Tensor, Tensor)> {
        self.token_logprobs_impl(batch, response_start, temperature, opts, true)
    }

    /// Same as [`Model::token_logprobs`] but attached to the parameters, for a loss on which
    /// the caller calls `.backward()` (keeps all activations; see
    /// [`Model::logprobs_with_grad`] for the memory-bounded driver).
    pub fn token_logprobs_tracked(
        &self,
        batch: &Batch,
        response_start: usize,
        temperature: f64,
        opts: &LogprobOptions,
    ) -> Result<(Tensor, Tensor)> {
        self.token_logprobs_impl(batch, response_start, temperature, opts, false)
    }

    fn token_logprobs_impl(
        &self,
        batch: &Batch,
        response_start: usize,
        temperature: f64,
        opts: &LogprobOptions,
        detached: bool,
    ) -> Result<(Tensor, Tensor)> {
        check_temperature(temperature)?;
        let rows = ResponseRows::new(batch, response_start, self.device())?;
        if rows.n == 0 {
            let z = rows.scatter(&Tensor::zeros(0, DType::F32, self.device())?)?;
            return Ok((z.clone(), z));
        }
        let h = self.hidden_states(batch, detached)?;
        let (b, t, hid) = h.dims3()?;
        let h = h.reshape((b * t, hid))?.index_select(&rows.hidden_idx, 0)?;
        let w = self.weights(detached);
        // Without a graph the chunks' packing rounds the f32 head directly; a bf16 copy pays
        // off only for the backward pass (its transpose).
        let copy = if detached {
            None
        } else {
            head_copy(&w.lm_head, self.matmul_precision(), rows.n)?
        };
        let (lp, en) = head_logprobs(
            &h,
            &w.lm_head,
            &rows.targets,
            temperature,
            opts.chunk_rows,
            self.matmul_precision(),
            copy.as_ref(),
        )?;
        Ok((rows.scatter(&lp)?, rows.scatter(&en)?))
    }

    /// Compute log-probs and entropies as [`Model::token_logprobs`], pass them to `loss_fn`
    /// (which returns a scalar), and back-propagate. Returns the loss value and the gradients
    /// of every parameter (look them up with `grads.get(var.as_tensor())`).
    ///
    /// Memory: the output head is recomputed chunk by chunk in the backward pass, so one
    /// block of logits lives at a time; with `opts.recompute_layers` only each layer's input
    /// is kept and layers are recomputed in reverse order.
    pub fn logprobs_with_grad(
        &self,
        batch: &Batch,
        response_start: usize,
        temperature: f64,
        opts: &LogprobOptions,
        loss_fn: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<(f32, GradStore)> {
        check_temperature(temperature)?;
        recompute::logprobs_with_grad(self, batch, response_start, temperature, opts, loss_fn)
    }
}

fn check_temperature(t: f64) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        bail!("temperature must be a positive finite number, got {t}");
    }
    Ok(())
}
