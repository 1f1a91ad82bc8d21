//! Reference implementations built only from candle's differentiable primitive ops.
//!
//! They define the semantics the fused kernels must reproduce (tests compare the two) and are
//! the code path on devices without a fused kernel (CUDA builds). Every function here is
//! differentiable through candle's own autograd.

use candle_core::{DType, Result, Tensor, D};

/// RMSNorm over the last dim, HF Qwen2/Llama semantics: normalise in f32, cast back to the
/// input dtype, then multiply by `weight` (cast to the input dtype).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let mean_sq = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(mean_sq + eps)?.sqrt()?)?;
    normed
        .to_dtype(dtype)?
        .broadcast_mul(&weight.to_dtype(dtype)?)
}

/// Rotary embedding, HF "rotate_half" convention. x: [b, h, t, d]; cos, sin: [b, t, d/2].
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (_b, _h, _t, d) = x.dims4()?;
    let half = d / 2;
    // [b, t, d/2] -> [b, 1, t, d/2] so the table broadcasts over heads.
    let cos = cos.to_dtype(x.dtype())?.unsqueeze(1)?;
    let sin = sin.to_dtype(x.dtype())?.unsqueeze(1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let lo = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let hi = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Tensor::cat(&[&lo, &hi], D::Minus1)
}

/// Softmax over the last dim (max-subtracted for stability).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?;
    let e = shifted.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Log-softmax over the last dim.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&log_sum)
}

/// Mixed-precision `x W^T`: both operands rounded to bf16, multiplied in f32 (the products of
/// two bf16 values are exact in f32), result in x's dtype. x `[..., k]`, w `[n, k]`.
/// The rounding is straight-through for the gradient (`t + (round(t) - t).detach()`), so the
/// gradients are those of the product of the rounded values, kept in f32.
pub fn linear_bf16(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let round = round_to_bf16_straight_through;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    round(x)?
        .reshape(((), k))?
        .matmul(&round(w)?.t()?)?
        .reshape(dims)?
        .to_dtype(x.dtype())
}

/// `t` in f32 with its values rounded to bf16, the gradient passing straight through (as if
/// the rounding were the identity): the operand rounding of [`linear_bf16`].
pub fn round_to_bf16_straight_through(t: &Tensor) -> Result<Tensor> {
    let t = t.to_dtype(DType::F32)?;
    t.broadcast_add(&(t.to_dtype(DType::BF16)?.to_dtype(DType::F32)? - &t)?.detach())
}

/// SwiGLU gate: silu(gate) * up.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

/// Token log-probabilities and entropies of temperature-scaled logits.
/// logits: [n, V] (any float dtype), targets: [n] (integer). Returns two f32 tensors of shape [n].
pub fn logprobs_and_entropy(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> Result<(Tensor, Tensor)> {
    let z = (logits.to_dtype(DType::F32)? / temperature)?;
    let logp_all = log_softmax_last_dim(&z)?;
    let idx = targets.to_dtype(DType::U32)?.contiguous()?.unsqueeze(1)?;
    let logp = logp_all.gather(&idx, 1)?.squeeze(1)?;
    // H = -sum p log p, which equals logsumexp(z) - sum p z.
    let entropy = (logp_all.exp()? * &logp_all)?.sum(1)?.neg()?;
    Ok((logp, entropy))
}

/// Causal attention with grouped KV heads; see [`crate::causal_attention`] for the contract.
/// Materialises the `[b, hq, t, s]` scores and an additive -1e9 mask (built on q's device).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_start: Option<&[usize]>,
    scale: f64,
) -> Result<Tensor> {
    let (b, hq, t, d) = q.dims4()?;
    let (_, hkv, s, _) = k.dims4()?;
    let group = hq / hkv;
    // HF repeat_kv: query head h reads kv head h / group.
    let expand = |x: &Tensor| {
        x.unsqueeze(2)?
            .broadcast_as((b, hkv, group, s, d))?
            .reshape((b, hq, s, d))
    };
    let (k, v) = (expand(k)?, expand(v)?);
    // The mask from index tensors on q's device: query i sits at key position i + s - t and
    // sees keys start ..= i + s - t.
    let dev = q.device();
    let starts: Vec<u32> = (0..b)
        .map(|bi| key_start.map_or(0, |ks| ks[bi]) as u32)
        .collect();
    let starts = Tensor::from_vec(starts, (b, 1, 1, 1), dev)?;
    let keys = Tensor::arange(0u32, s as u32, dev)?.reshape((1, 1, 1, s))?;
    let qpos = Tensor::arange((s - t) as u32, s as u32, dev)?.reshape((1, 1, t, 1))?;
    let visible = keys
        .broadcast_ge(&starts)?
        .broadcast_mul(&keys.broadcast_le(&qpos)?)?
        .to_dtype(DType::F32)?;
    let mask = ((visible - 1.0)? * 1e9)?.to_dtype(q.dtype())?;
    let row_visible = qpos.broadcast_ge(&starts)?.to_dtype(q.dtype())?;
    let scores = (q.contiguous()?.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
    softmax_last_dim(&scores)?
        .matmul(&v)?
        .broadcast_mul(&row_visible)
}
