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
}

/// Per-forward inputs shared by all layers: rotary tables `[b, t, d/2]` and the additive mask
/// `[b, 1, 1, t_q, t_k]`.
pub struct LayerInputs<'a> {
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub mask: &'a Tensor,
}

/// `x W^T + b` for x `[n, in]`.
pub fn linear(x: &Tensor, l: &Linear) -> Result<Tensor> {
    let y = x.matmul(&l.weight.t()?)?;
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
    Ok((&x + mlp(w, &h)?)?)
}

fn mlp(w: &LayerWeights, h: &Tensor) -> Result<Tensor> {
    let (b, t, hid) = h.dims3()?;
    let h2 = h.reshape((b * t, hid))?;
    let act = k::silu_mul(&linear(&h2, &w.gate)?, &linear(&h2, &w.up)?)?;
    Ok(linear(&act, &w.down)?.reshape((b, t, hid))?)
}

/// Grouped-query attention. Instead of materialising repeated key/value heads, the `rep`
/// query heads that share a key/value head are stacked along the query axis, so one batched
/// matmul per kv head does the work (same result as repeating kv heads, less memory).
fn attention(w: &LayerWeights, h: &Tensor, inp: &LayerInputs, dims: Dims, cache: Option<&mut LayerCache>) -> Result<Tensor> {
    let (b, t, hid) = h.dims3()?;
    let Dims { heads, kv_heads, head_dim: d, .. } = dims;
    let rep = heads / kv_heads;
    let h2 = h.reshape((b * t, hid))?;
    let split = |y: Tensor, n: usize| -> Result<Tensor> {
        Ok(y.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?)
    };
    let q = split(linear(&h2, &w.q)?, heads)?;
    let key = split(linear(&h2, &w.k)?, kv_heads)?;
    let val = split(linear(&h2, &w.v)?, kv_heads)?;
    let q = k::rope(&q, inp.cos, inp.sin)?;
    let key = k::rope(&key, inp.cos, inp.sin)?;
    let (key, val) = match cache {
        Some(c) => c.append(&key, &val)?,
        None => (key, val),
    };
    let t_k = key.dim(2)?;
    // [b, heads, t, d] -> [b, kv_heads, rep * t, d]: heads h*rep..(h+1)*rep share kv head h.
    let q = q.reshape((b, kv_heads, rep * t, d))?;
    let scores = (q.matmul(&key.t()?)? * (1.0 / (d as f64).sqrt()))?;
    let scores = scores.reshape((b, kv_heads, rep, t, t_k))?.broadcast_add(inp.mask)?;
    let probs = k::softmax_last_dim(&scores)?.reshape((b, kv_heads, rep * t, t_k))?;
    let out = probs.matmul(&val)?; // [b, kv_heads, rep * t, d]
    let out = out.reshape((b, heads, t, d))?.transpose(1, 2)?.reshape((b * t, heads * d))?;
    Ok(linear(&out, &w.o)?.reshape((b, t, hid))?)
}

/// Row gather that keeps the graph: rows `idx` of x `[n, h]`.
pub fn select_rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    Ok(x.index_select(idx, 0)?)
}

/// Token embedding lookup: ids `[b, t]` -> `[b, t, hidden]`.
pub fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    Ok(table.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, table.dim(D::Minus1)?))?)
}
