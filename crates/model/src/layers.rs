//! One decoder layer (pre-norm attention + SwiGLU MLP), built only from candle's
//! differentiable primitives and the fused ops of `oneshot-kernels`.
use crate::kv_cache::LayerCache;
use crate::params::{LayerWeights, Linear};
use anyhow::Result;
use candle_core::{Tensor, D};
use oneshot_kernels as k;

/// Shapes the layers need.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f64,
    pub matmul: MatmulPrecision,
}

/// How the projections multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// In the weights' dtype (f32 weights: full f32 products).
    #[default]
    F32,
    /// Operands rounded to bf16, f32 accumulation, forward and backward
    /// (`oneshot_kernels::linear_bf16`, PyTorch's CPU autocast semantics); weights, their
    /// gradients and everything outside the projections stay f32. Log-probs with and
    /// without a graph use the same products (so PPO's ratio starts at exactly 1).
    /// Generation rounds the projection weights to bf16 once per call; its KV-cache steps of
    /// fewer than [`BF16_MIN_ROWS`] rows multiply f32 activations by those bf16 weights
    /// (bound by streaming the weights, which bf16 halves), larger steps round both.
    Bf16,
}

impl std::str::FromStr for MatmulPrecision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => anyhow::bail!("unknown matmul precision `{other}` (f32 or bf16)"),
        }
    }
}

/// Fewest rows for which a KV-cache decoding step uses bf16 products under
/// [`MatmulPrecision::Bf16`].
pub const BF16_MIN_ROWS: usize = 16;

/// Per-forward inputs shared by all layers: rotary tables `[b, t, d/2]` and the additive mask
/// `[b, 1, 1, t_q, t_k]`.
pub struct LayerInputs<'a> {
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub mask: &'a Tensor,
    /// Per-row first visible key: when present, attention runs through the fused kernel.
    pub key_start: Option<&'a [usize]>,
}

/// `x W^T` for x `[n, in]`, W `[out, in]`. Without autograd (detached weights, as in decoding
/// and `token_logprobs`) on the CPU this is the weight-streaming kernel of `oneshot-kernels`
/// (no packed copy of W per call; bf16 weights read as bf16) for bf16 weights or up to 64 rows;
/// otherwise candle's matmul.
///
/// `ONESHOT_CANDLE_MATMUL=1` in the environment forces candle's matmul everywhere (for A/B
/// speed comparisons), except under `ONESHOT_ISA=portable` (`oneshot_kernels::isa`): there
/// every product on the CPU, with or without autograd, f32 or bf16 precision, is the
/// fixed-order kernel (`oneshot_kernels::portable_matmul_nt`, and `matmul_nt_inference`, which
/// runs the same dot products at that level), so results do not depend on the CPU or the
/// thread count. candle's CPU matmul picks micro-kernels and blocking from the CPU's features
/// and cache sizes, which changes the order of its sums.
pub fn project(x: &Tensor, weight: &Tensor, matmul: MatmulPrecision) -> Result<Tensor> {
    project_with(x, weight, matmul, None)
}

/// [`project`] with, for bf16 products, a bf16 copy of `weight` made once by the caller (the
/// output head, applied chunk by chunk) or packed once for many decoding steps.
pub fn project_with(
    x: &Tensor,
    weight: &Tensor,
    matmul: MatmulPrecision,
    copy: Option<&k::Bf16Weight>,
) -> Result<Tensor> {
    static FORCE_CANDLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let force_candle = *FORCE_CANDLE
        .get_or_init(|| std::env::var("ONESHOT_CANDLE_MATMUL").is_ok_and(|v| v == "1"));
    // Above ~64 rows candle's packed f32 GEMM is as fast as ours (measured, see
    // docs/BENCHMARKS.md); for bf16 weights ours wins at every size.
    let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?.max(1);
    if x.device().is_cpu() && k::isa::is_portable() {
        return Ok(match matmul {
            MatmulPrecision::Bf16 => k::linear_bf16(x, weight, copy)?,
            MatmulPrecision::F32 if x.track_op() || weight.track_op() => {
                k::portable_matmul_nt(x, weight)?
            }
            MatmulPrecision::F32 => k::matmul_nt_inference(x, weight)?,
        });
    }
    if !force_candle && matmul == MatmulPrecision::Bf16 {
        return Ok(k::linear_bf16(x, weight, copy)?);
    }
    let ours_faster = weight.dtype() == candle_core::DType::BF16 || rows <= 64;
    if !force_candle && ours_faster && x.device().is_cpu() && !x.track_op() && !weight.track_op() {
        return Ok(k::matmul_nt_inference(x, weight)?);
    }
    if x.device().is_cpu() {
        k::isa::path::CANDLE_MATMUL.hit();
    }
    Ok(x.matmul(&weight.t()?)?)
}

/// Batched `a b^T` for a `[.., m, d]`, b `[.., n, d]` (same leading dims): candle's matmul, or
/// under the portable level (on the CPU) the fixed-order kernel.
fn matmul_nt_batched(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() && k::isa::is_portable() {
        return Ok(k::portable_matmul_nt(a, b)?);
    }
    if a.device().is_cpu() {
        k::isa::path::CANDLE_MATMUL.hit();
    }
    Ok(a.matmul(&b.t()?)?)
}

/// `x W^T + b` for x `[n, in]`, plus the LoRA update when the projection has an adapter.
pub fn linear(x: &Tensor, l: &Linear, matmul: MatmulPrecision) -> Result<Tensor> {
    let y = match &l.lora {
        Some(a) => crate::lora::adapted_product(x, &l.weight, a, matmul)?,
        // A frozen weight under a tracked input (a projection LoRA does not adapt): no dW.
        None if x.track_op() && !l.weight.track_op() => {
            crate::lora::frozen::frozen_product(x, &l.weight, matmul)?
        }
        None => project_with(x, &l.weight, matmul, l.packed.as_ref())?,
    };
    Ok(match &l.bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// x `[b, t, hidden]` -> `[b, t, hidden]`. With a cache, new keys/values are appended and
/// attention runs over everything cached.
pub fn decoder_layer(
    w: &LayerWeights,
    x: &Tensor,
    inp: &LayerInputs,
    dims: Dims,
    cache: Option<&mut LayerCache>,
) -> Result<Tensor> {
    let h = k::rms_norm(x, &w.input_norm, dims.eps)?;
    let x = (x + attention(w, &h, inp, dims, cache)?)?;
    let h = k::rms_norm(&x, &w.post_norm, dims.eps)?;
    Ok((&x + mlp(w, &h, dims.matmul)?)?)
}

fn mlp(w: &LayerWeights, h: &Tensor, matmul: MatmulPrecision) -> Result<Tensor> {
    let (b, t, hid) = h.dims3()?;
    let h2 = h.reshape((b * t, hid))?;
    let act = k::silu_mul(&linear(&h2, &w.gate, matmul)?, &linear(&h2, &w.up, matmul)?)?;
    Ok(linear(&act, &w.down, matmul)?.reshape((b, t, hid))?)
}

/// Grouped-query attention. Instead of materialising repeated key/value heads, the `rep`
/// query heads that share a key/value head are stacked along the query axis, so one batched
/// matmul per kv head does the work (same result as repeating kv heads, less memory).
fn attention(
    w: &LayerWeights,
    h: &Tensor,
    inp: &LayerInputs,
    dims: Dims,
    cache: Option<&mut LayerCache>,
) -> Result<Tensor> {
    let (b, t, hid) = h.dims3()?;
    let Dims {
        heads,
        kv_heads,
        head_dim: d,
        ..
    } = dims;
    let rep = heads / kv_heads;
    let h2 = h.reshape((b * t, hid))?;
    let split = |y: Tensor, n: usize| -> Result<Tensor> {
        Ok(y.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?)
    };
    let q = split(linear(&h2, &w.q, dims.matmul)?, heads)?;
    let key = split(linear(&h2, &w.k, dims.matmul)?, kv_heads)?;
    let val = split(linear(&h2, &w.v, dims.matmul)?, kv_heads)?;
    let q = k::rope(&q, inp.cos, inp.sin)?;
    let key = k::rope(&key, inp.cos, inp.sin)?;
    let (key, val) = match cache {
        Some(c) if c.is_paged() => {
            // Shared-prompt cache: it attends over the prompt and each row's own tokens.
            let out = c.attend(&q, &key, &val, 1.0 / (d as f64).sqrt())?;
            let out = out.transpose(1, 2)?.reshape((b * t, heads * d))?;
            return Ok(linear(&out, &w.o, dims.matmul)?.reshape((b, t, hid))?);
        }
        Some(c) => c.append(&key, &val)?,
        None => (key, val),
    };
    if let Some(starts) = inp.key_start {
        // Fused GQA attention: no [t, t_k] scores, no repeated kv heads, no mask tensor.
        let out = k::causal_attention(&q, &key, &val, Some(starts), 1.0 / (d as f64).sqrt())?;
        let out = out.transpose(1, 2)?.reshape((b * t, heads * d))?;
        return Ok(linear(&out, &w.o, dims.matmul)?.reshape((b, t, hid))?);
    }
    let t_k = key.dim(2)?;
    // [b, heads, t, d] -> [b, kv_heads, rep * t, d]: heads h*rep..(h+1)*rep share kv head h.
    let q = q.reshape((b, kv_heads, rep * t, d))?;
    let scores = (matmul_nt_batched(&q, &key)? * (1.0 / (d as f64).sqrt()))?;
    let scores = scores
        .reshape((b, kv_heads, rep, t, t_k))?
        .broadcast_add(inp.mask)?;
    let probs = k::softmax_last_dim(&scores)?.reshape((b, kv_heads, rep * t, t_k))?;
    // [b, kv_heads, rep * t, d]
    let out = matmul_nt_batched(&probs, &val.transpose(2, 3)?)?;
    let out = out
        .reshape((b, heads, t, d))?
        .transpose(1, 2)?
        .reshape((b * t, heads * d))?;
    Ok(linear(&out, &w.o, dims.matmul)?.reshape((b, t, hid))?)
}

/// Row gather that keeps the graph: rows `idx` of x `[n, h]`.
pub fn select_rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    Ok(x.index_select(idx, 0)?)
}

/// Token embedding lookup: ids `[b, t]` -> `[b, t, hidden]`.
pub fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    Ok(table
        .index_select(&ids.flatten_all()?, 0)?
        .reshape((b, t, table.dim(D::Minus1)?))?)
}
