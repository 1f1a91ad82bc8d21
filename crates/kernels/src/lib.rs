//! Fused tensor ops with forward and backward (candle CustomOps).
//!
//! Every public op is differentiable w.r.t. every float input. On CPU the work is done by fused,
//! rayon-parallel kernels (`CustomOp`s whose backward is itself a fused op); on other devices
//! the op falls back to the composition of candle primitives in [`reference`], which also
//! defines the semantics the tests hold the fused kernels to.
//!
//! Inputs may be non-contiguous and of any float dtype; the CPU kernels compute in f32 and
//! return the input dtype (except [`logprobs_and_entropy`], which always returns f32).

// Tile loops index several arrays by the same register row / column on purpose.
#![allow(clippy::needless_range_loop)]

pub mod alloc;
mod attention;
mod buffer;
pub mod chunked_attention;
pub mod device_path;
mod gemm_bf16;
pub mod isa;
mod linear;
mod linear_bf16;
mod logprob;
mod portable_matmul;
pub mod reference;
mod rms_norm;
mod rope;
mod silu_mul;
#[doc(hidden)]
pub mod simd;
mod softmax;
mod storage;

use candle_core::{bail, DType, Result, Tensor, D};
use storage::{f32_contiguous, on_cpu};

/// RMSNorm over the last dim: `x * rsqrt(mean(x^2) + eps) * weight`. x: `[..., d]`, weight: `[d]`.
///
/// Computed in f32 internally (HF Qwen2/Llama semantics). For bf16/f16 input the fused path
/// rounds once at the end instead of after the normalisation (at most one ulp apart).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    if weight.dims() != [d] {
        bail!(
            "rms_norm: weight shape {:?} must be [{d}] to match x {:?}",
            weight.shape(),
            x.shape()
        );
    }
    if !on_cpu(x) {
        return reference::rms_norm(x, weight, eps);
    }
    let dtype = x.dtype();
    let xf = f32_contiguous(x)?;
    let w = f32_contiguous(weight)?;
    let op = rms_norm::RmsNorm { eps: eps as f32 };
    // Each reshape is a backprop node that costs a full gradient copy: only add them if needed.
    let out = if x.rank() == 2 {
        xf.apply_op2(&w, op)?
    } else {
        xf.reshape(((), d))?.apply_op2(&w, op)?.reshape(x.shape())?
    };
    out.to_dtype(dtype)
}

/// Rotary embedding, HF "rotate_half" (non-interleaved) convention, per-row positions.
/// x: `[b, h, t, d]`; cos, sin: `[b, t, d/2]` already gathered at each row's positions (so left
/// padding works). `out[..., :d/2] = x1*cos - x2*sin ; out[..., d/2:] = x2*cos + x1*sin`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, _h, t, d) = x.dims4()?;
    if d % 2 != 0 {
        bail!("rope: head dim {d} of x {:?} must be even", x.shape());
    }
    for (name, table) in [("cos", cos), ("sin", sin)] {
        if table.dims() != [b, t, d / 2] {
            bail!(
                "rope: {name} shape {:?} must be [b, t, d/2] = [{b}, {t}, {}]",
                table.shape(),
                d / 2
            );
        }
    }
    if !on_cpu(x) {
        return reference::rope(x, cos, sin);
    }
    let op = rope::Rope { inverse: false };
    let out = f32_contiguous(x)?.apply_op3(&f32_contiguous(cos)?, &f32_contiguous(sin)?, op)?;
    out.to_dtype(x.dtype())
}

fn softmax_impl(x: &Tensor, log: bool) -> Result<Tensor> {
    let out = f32_contiguous(x)?.apply_op1(softmax::Softmax { log })?;
    out.to_dtype(x.dtype())
}

/// Softmax over the last dim.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !on_cpu(x) {
        return reference::softmax_last_dim(x);
    }
    softmax_impl(x, false)
}

/// Log-softmax over the last dim.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !on_cpu(x) {
        return reference::log_softmax_last_dim(x);
    }
    softmax_impl(x, true)
}

/// SwiGLU gate: `silu(gate) * up`, same shapes.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.shape() != up.shape() {
        bail!(
            "silu_mul: gate shape {:?} != up shape {:?}",
            gate.shape(),
            up.shape()
        );
    }
    if !on_cpu(gate) {
        return reference::silu_mul(gate, up);
    }
    let out = f32_contiguous(gate)?.apply_op2(&f32_contiguous(up)?, silu_mul::SiluMul)?;
    out.to_dtype(gate.dtype())
}

/// For logits `[n, V]` (any float dtype), targets `[n]` (integer), and a temperature > 0:
/// `z = logits / temperature`; returns `(logp [n] = log_softmax(z)[target],
/// entropy [n] = logsumexp(z) - sum softmax(z)*z)`, both f32 and differentiable w.r.t. logits.
///
/// The fused version reads f32/bf16/f16 logits in place and materialises exactly one extra
/// `[n, V]` tensor, the gradient, during backward.
pub fn logprobs_and_entropy(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> Result<(Tensor, Tensor)> {
    if !(temperature.is_finite() && temperature > 0.0) {
        bail!("logprobs_and_entropy: temperature must be finite and > 0, got {temperature}");
    }
    let (n, _v) = logits.dims2()?;
    if targets.dims() != [n] {
        bail!(
            "logprobs_and_entropy: targets shape {:?} must be [{n}] to match logits {:?}",
            targets.shape(),
            logits.shape()
        );
    }
    if !targets.dtype().is_int() {
        bail!(
            "logprobs_and_entropy: targets must be integers, got {:?}",
            targets.dtype()
        );
    }
    if !on_cpu(logits) {
        return reference::logprobs_and_entropy(logits, targets, temperature);
    }
    let logits = match logits.dtype() {
        DType::F32 | DType::BF16 | DType::F16 => logits.contiguous()?,
        _ => f32_contiguous(logits)?,
    };
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    let op = logprob::LogprobEntropy {
        inv_temp: (1.0 / temperature) as f32,
    };
    let out = logits.apply_op2(&targets, op)?;
    let logp = out
        .narrow(1, logprob::COL_LOGP, 1)?
        .squeeze(1)?
        .contiguous()?;
    let entropy = out
        .narrow(1, logprob::COL_ENTROPY, 1)?
        .squeeze(1)?
        .contiguous()?;
    Ok((logp, entropy))
}

/// Causal scaled-dot-product attention with grouped KV heads (GQA), fused on CPU.
///
/// q: `[b, hq, t, d]`; k, v: `[b, hkv, s, d]` with `hq % hkv == 0` and `s >= t`. Query `i` sits
/// at key position `i + s - t` and sees keys `key_start[b] ..= i + s - t` (`key_start` hides left
/// padding; `None` = all from 0). Scores are `scale * q.k`. A query row that sees no key (a
/// padding row) outputs zeros and passes no gradient. Differentiable w.r.t. q, k and v; the
/// fused version never materialises the `[t, s]` scores (online softmax over key tiles, and a
/// backward that recomputes probabilities from the saved log-sum-exp). Off the host path
/// ([`device_path`]) it is [`chunked_attention::causal_attention`]: candle ops scoring a chunk
/// of queries at a time, with a recomputing backward.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_start: Option<&[usize]>,
    scale: f64,
) -> Result<Tensor> {
    let (b, hq, t, d) = q.dims4()?;
    let (bk, hkv, s, dk) = k.dims4()?;
    if (bk, dk) != (b, d) || v.dims() != k.dims() {
        bail!(
            "causal_attention: q {:?}, k {:?}, v {:?} must be [b, hq, t, d], [b, hkv, s, d] twice",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    if hkv == 0 || hq % hkv != 0 || s < t {
        bail!("causal_attention: need hq ({hq}) a multiple of hkv ({hkv}) and s ({s}) >= t ({t})");
    }
    if key_start.is_some_and(|ks| ks.len() != b) {
        bail!(
            "causal_attention: key_start has {} entries for batch {b}",
            key_start.map_or(0, |k| k.len())
        );
    }
    if !scale.is_finite() {
        bail!("causal_attention: scale must be finite, got {scale}");
    }
    if device_path::chunked_attention(q.device()) {
        return chunked_attention::causal_attention(q, k, v, key_start, scale, 0);
    }
    let starts = key_start.map_or_else(|| vec![0; b], |ks| ks.to_vec());
    let op = attention::CausalAttention::new(scale as f32, starts);
    let out = f32_contiguous(q)?.apply_op3(&f32_contiguous(k)?, &f32_contiguous(v)?, op)?;
    out.to_dtype(q.dtype())
}

/// `x W^T` for inference (no autograd): x `[..., k]` of any float dtype, w `[n, k]` (the HF
/// `Linear` layout) in f32 or bf16; returns `[..., n]` in x's dtype, computed with f32
/// accumulators. Reads the weights in place (no packing or transposed copy), once per 64 rows
/// of x, so decoding is bound by the weight bytes, which bf16 halves. With bf16 x and bf16 w
/// (and at least 4 rows) on a CPU with AVX512_BF16 it multiplies with bf16 dot-product
/// instructions (f32 accumulation).
///
/// Refuses inputs that track gradients (use `matmul` for those): the result would silently
/// drop out of the graph. Off-CPU it falls back to candle's matmul.
pub fn matmul_nt_inference(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    matmul_nt_inference_at(isa::active(), x, w)
}

/// [`matmul_nt_inference`] with the kernels of level `level` (limited to what the CPU runs),
/// so one process can run and compare every path; [`isa::paths_used`] names the one taken.
pub fn matmul_nt_inference_at(level: isa::Isa, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    if x.dim(D::Minus1)? != k {
        bail!(
            "matmul_nt_inference: x {:?} and w {:?} disagree on the inner dim",
            x.shape(),
            w.shape()
        );
    }
    if x.track_op() || w.track_op() {
        bail!("matmul_nt_inference: inputs track gradients; it has no backward (detach them or use matmul)");
    }
    let mut out_dims = x.dims().to_vec();
    *out_dims.last_mut().expect("x has a last dim") = n;
    if !on_cpu(x) {
        let x2 = x.reshape(((), k))?;
        return x2.matmul(&w.to_dtype(x.dtype())?.t()?)?.reshape(out_dims);
    }
    let m = x.elem_count() / k.max(1);
    // Below 4 rows (decoding) the weight stream bounds the time and widening bf16 weights
    // streams better; from 4 rows on, bf16 dot products double the multiply throughput.
    if m >= 4
        && x.dtype() == DType::BF16
        && w.dtype() == DType::BF16
        && linear::bf16_dot_allowed(level)
    {
        return matmul_nt_bf16_dot(level, x, w, m, n, k, out_dims);
    }
    let xf = f32_contiguous(x)?;
    let (xs, xl) = xf.storage_and_layout();
    let candle_core::Storage::Cpu(xc) = &*xs else {
        bail!("matmul_nt_inference: x is not on the CPU")
    };
    let xd = storage::f32_slice(xc, xl, "matmul_nt_inference", "x")?;
    let wc = if matches!(w.dtype(), DType::F32 | DType::BF16) {
        w.contiguous()?
    } else {
        w.to_dtype(DType::F32)?
    };
    let (ws, wl) = wc.storage_and_layout();
    let candle_core::Storage::Cpu(wcpu) = &*ws else {
        bail!("matmul_nt_inference: w is not on the CPU")
    };
    let rows = match wcpu {
        candle_core::CpuStorage::BF16(v) => {
            linear::WeightRows::Bf16(storage::contiguous_part(v, wl, "matmul_nt_inference", "w")?)
        }
        other => {
            linear::WeightRows::F32(storage::f32_slice(other, wl, "matmul_nt_inference", "w")?)
        }
    };
    let mut y = vec![0f32; m * n];
    linear::matmul_nt_with(level, xd, m, k, rows, n, &mut y);
    drop((xs, ws));
    Tensor::from_vec(y, out_dims, x.device())?.to_dtype(x.dtype())
}

/// Differentiable `x W^T` whose sums have an order fixed by the code (see [`isa`]): the same
/// bits on every CPU and with any thread count, also in the backward pass (`dx = dy W`,
/// `dW = dy^T x`, the same kernel on transposed copies). x `[..., m, k]`; w either `[n, k]`
/// (shared, the HF `Linear` layout; x may then have any leading dims) or `[..., n, k]` with
/// the same leading dims as x. Returns `[..., m, n]` in x's dtype, computed in f32. Slower
/// than the level-dispatched products; the model uses it under `ONESHOT_ISA=portable`.
/// Off the CPU it is candle's matmul.
pub fn portable_matmul_nt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let k = w.dim(D::Minus1)?;
    if x.dim(D::Minus1)? != k || w.rank() < 2 {
        bail!(
            "portable_matmul_nt: x {:?} and w {:?} must be [..., k] and [..., n, k]",
            x.shape(),
            w.shape()
        );
    }
    let n = w.dim(D::Minus2)?;
    let batch: Vec<usize> = w.dims()[..w.rank() - 2].to_vec();
    if !batch.is_empty() && (x.rank() != w.rank() || x.dims()[..x.rank() - 2] != batch[..]) {
        bail!(
            "portable_matmul_nt: batched w {:?} needs x [..., m, k] with the same leading dims, got {:?}",
            w.shape(),
            x.shape()
        );
    }
    let mut out_dims = x.dims().to_vec();
    *out_dims.last_mut().expect("x has a last dim") = n;
    if !on_cpu(x) {
        let y = if batch.is_empty() {
            x.broadcast_matmul(&w.t()?)?
        } else {
            x.matmul(&w.t()?)?
        };
        return Ok(y);
    }
    let b: usize = batch.iter().product();
    let (x3, w3) = if batch.is_empty() {
        (x.reshape((1, (), k))?, w.reshape((1, n, k))?)
    } else {
        (x.reshape((b, (), k))?, w.reshape((b, n, k))?)
    };
    let y =
        f32_contiguous(&x3)?.apply_op2(&f32_contiguous(&w3)?, portable_matmul::PortableMatmulNt)?;
    y.reshape(out_dims)?.to_dtype(x.dtype())
}

/// `t` rounded to bf16 (round to nearest even), as a bf16 tensor. On the CPU an f32 tensor is
/// converted by a parallel pass (candle's `to_dtype` is one thread: ~1 s for a 0.5B model).
pub fn round_to_bf16(t: &Tensor) -> Result<Tensor> {
    if !on_cpu(t) || t.dtype() != DType::F32 {
        return t.to_dtype(DType::BF16);
    }
    let tc = t.contiguous()?;
    let (storage, layout) = tc.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) = &*storage else {
        bail!("round_to_bf16: expected an f32 CPU tensor");
    };
    let rows = linear_bf16::to_bf16(storage::contiguous_part(v, layout, "round_to_bf16", "t")?);
    drop(storage);
    Tensor::from_vec(rows, t.shape(), t.device())
}

/// bf16 copies of a weight matrix for repeated [`linear_bf16`] calls with it, so the rounding
/// (and, for the backward pass, the transpose, or the packing of the packed kernels) happens
/// once instead of per call. Holds nothing where the fused op does not run.
#[derive(Clone, Default)]
pub struct Bf16Weight {
    /// Row-major bf16 copy ([`Bf16Weight::new`]).
    copy: Option<std::sync::Arc<linear_bf16::Shadow>>,
    /// The weight in the packed kernels' panel layout, made by the first product of at least
    /// `gemm_bf16::MIN_ROWS` rows ([`Bf16Weight::packed_on_first_use`]).
    packed: Option<std::sync::Arc<std::sync::OnceLock<gemm_bf16::PackedWeight>>>,
}

impl Bf16Weight {
    /// Rounds `w` `[n, k]` (f32 or bf16) to bf16 (the output head, applied chunk by chunk).
    /// Valid while `w` does not change.
    pub fn new(w: &Tensor) -> Result<Self> {
        if !on_cpu(w) || !linear::bf16_dot_available() {
            return Ok(Self::default());
        }
        Ok(Self {
            copy: Some(std::sync::Arc::new(linear_bf16::shadow_of(w)?)),
            packed: None,
        })
    }

    /// For many forward products of one weight with a few dozen rows each (the projections of
    /// KV-cache decoding steps): the first product with enough rows for the packed kernels
    /// packs the weight it is given, and later products read those panels instead of packing
    /// the whole weight again, which at decoding's row counts costs about as much as the
    /// multiplies. Valid for one weight that does not change (products with another shape are
    /// refused). Holds nothing where no packed kernel runs.
    pub fn packed_on_first_use() -> Self {
        Self {
            copy: None,
            packed: gemm_bf16::best_kernel_for(isa::active())
                .map(|_| std::sync::Arc::new(std::sync::OnceLock::new())),
        }
    }

    /// Bytes of the packed panels made so far (0 before the first product that packs).
    pub fn packed_bytes(&self) -> usize {
        self.packed
            .as_ref()
            .and_then(|p| p.get())
            .map_or(0, |p| p.bytes())
    }
}

/// Mixed-precision `x W^T` (PyTorch CPU autocast semantics): x `[..., k]`, w `[n, k]` (HF
/// `Linear` layout, f32 or bf16) are rounded to bf16, products are accumulated in f32, and the
/// result has x's dtype. Differentiable w.r.t. x and w; the backward products (`dy . W` and
/// `dy^T . x`) are computed the same way, from bf16-rounded `dy`. With AVX512_BF16 each
/// instruction does twice the multiply-adds of an f32 FMA, which is where the speed comes from.
///
/// `copy` (made by [`Bf16Weight::new`] from this same `w`) skips re-rounding the weight.
/// Without AVX512_BF16, or off the CPU, it is [`reference::linear_bf16`] (same rounding of the
/// operands, candle's matmul).
pub fn linear_bf16(x: &Tensor, w: &Tensor, copy: Option<&Bf16Weight>) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    if x.dim(D::Minus1)? != k {
        bail!(
            "linear_bf16: x {:?} and w {:?} disagree on the inner dim",
            x.shape(),
            w.shape()
        );
    }
    if on_cpu(x) && isa::is_portable() {
        let round = reference::round_to_bf16_straight_through;
        return portable_matmul_nt(&round(x)?, &round(w)?)?.to_dtype(x.dtype());
    }
    if !on_cpu(x) || !linear::bf16_dot_available() {
        if on_cpu(x) {
            isa::path::LINEAR_BF16_REFERENCE.hit();
        }
        return reference::linear_bf16(x, w);
    }
    let mut out_dims = x.dims().to_vec();
    *out_dims.last_mut().expect("x has a last dim") = n;
    let wc = if w.dtype() == DType::BF16 {
        w.contiguous()?
    } else {
        f32_contiguous(w)?
    };
    let op = linear_bf16::LinearBf16 {
        shadow: copy.and_then(|c| c.copy.clone()),
        packed: copy.and_then(|c| c.packed.clone()),
    };
    let xf = f32_contiguous(x)?;
    // Each reshape is a backprop node that costs a full gradient copy: only add them if needed.
    let y = if x.rank() == 2 {
        xf.apply_op2(&wc, op)?
    } else {
        xf.reshape(((), k))?.apply_op2(&wc, op)?.reshape(out_dims)?
    };
    y.to_dtype(x.dtype())
}

/// bf16 x bf16 with AVX512_BF16 dot products (see `linear::matmul_nt_bf16`).
fn matmul_nt_bf16_dot(
    level: isa::Isa,
    x: &Tensor,
    w: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    out_dims: Vec<usize>,
) -> Result<Tensor> {
    let (xc, wc) = (x.contiguous()?, w.contiguous()?);
    let (xs, xl) = xc.storage_and_layout();
    let (ws, wl) = wc.storage_and_layout();
    let (
        candle_core::Storage::Cpu(candle_core::CpuStorage::BF16(xv)),
        candle_core::Storage::Cpu(candle_core::CpuStorage::BF16(wv)),
    ) = (&*xs, &*ws)
    else {
        bail!("matmul_nt_inference: expected bf16 CPU tensors");
    };
    let xd = storage::contiguous_part(xv, xl, "matmul_nt_inference", "x")?;
    let wd = storage::contiguous_part(wv, wl, "matmul_nt_inference", "w")?;
    let mut y = vec![0f32; m * n];
    linear::matmul_nt_bf16_with(level, xd, m, k, wd, n, &mut y);
    drop((xs, ws));
    Tensor::from_vec(y, out_dims, x.device())?.to_dtype(DType::BF16)
}
