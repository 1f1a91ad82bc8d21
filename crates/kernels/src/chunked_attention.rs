//! Causal attention with grouped KV heads written in candle tensor ops, chunked over queries:
//! the path for devices without a fused kernel (CUDA) and for the CPU when the device-generic
//! path is forced (`ONESHOT_DEVICE_PATH=generic`).
//!
//! Same contract as [`crate::causal_attention`]. Scores exist for one chunk of queries at a
//! time (`[b, hkv, group, chunk, s]`), so no `[t, s]` score tensor of a whole response is ever
//! held. The forward runs on detached inputs and is attached to the graph by a `CustomOp3` that
//! keeps nothing but its inputs; its backward recomputes each chunk's probabilities
//! (FlashAttention-style: `dS = P * (dP - rowsum(dO * O))`). The visibility mask is built on the
//! device from index tensors (key positions, query positions, `key_start`), never on the host,
//! and once per batch: every layer of a forward (and the backward's recompute) attends with the
//! same sizes and `key_start`, so the first call builds the chunks' masks and the others reuse
//! them ([`masks_built`] counts the builds).
//! Arithmetic is f32 whatever the input dtype; the output has q's dtype.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, DeviceLocation, Layout, Result};
use candle_core::{Shape, Storage};
use candle_core::{Tensor, D};

/// Query rows per chunk unless the score budget allows fewer.
pub const DEFAULT_CHUNK: usize = 256;
/// Largest score chunk (f32 elements) the default chunking allows: 64 Mi = 256 MiB.
const SCORE_BUDGET: usize = 64 << 20;
/// Largest mask (f32 elements, `b * t * s`) kept for a batch: 16 Mi = 64 MiB. Larger batches
/// keep only the index tensors and build each chunk's mask from them on the device per call.
const MASK_BUDGET: usize = 16 << 20;

/// Query rows per chunk for these sizes: at most [`DEFAULT_CHUNK`], fewer when one chunk's
/// scores (`b * hq * chunk * s`) would pass the budget, at least one.
pub fn default_chunk(b: usize, hq: usize, s: usize) -> usize {
    let per_row = (b * hq * s).max(1);
    (SCORE_BUDGET / per_row).clamp(1, DEFAULT_CHUNK)
}

/// Chunked causal attention; `chunk` query rows are scored at a time (0 = [`default_chunk`]).
/// Shapes are checked by [`crate::causal_attention`], which calls this off the host path.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_start: Option<&[usize]>,
    scale: f64,
    chunk: usize,
) -> Result<Tensor> {
    let (b, hq, _, _) = q.dims4()?;
    let (_, _, s, _) = k.dims4()?;
    let chunk = if chunk == 0 {
        default_chunk(b, hq, s)
    } else {
        chunk
    };
    let starts = key_start.map_or_else(|| vec![0; b], |ks| ks.to_vec());
    let plan = Plan::new(q, k, &starts, scale, chunk)?;
    let out = plan.forward(&q.detach(), &k.detach(), &v.detach())?;
    if !(q.track_op() || k.track_op() || v.track_op()) {
        return out.to_dtype(q.dtype());
    }
    let op = Attach {
        out: Mutex::new(Some(out)),
        plan,
    };
    q.apply_op3_arc(k, v, Arc::new(Box::new(op)))?
        .to_dtype(q.dtype())
}

/// Sizes and the device-side index tensors shared by the forward and backward passes.
struct Plan {
    b: usize,
    hq: usize,
    hkv: usize,
    t: usize,
    s: usize,
    d: usize,
    scale: f64,
    chunk: usize,
    masks: Arc<BatchMasks>,
}

/// What the masks of a batch depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MaskKey {
    location: DeviceLocation,
    b: usize,
    t: usize,
    s: usize,
    chunk: usize,
    starts: Vec<usize>,
}

/// The masks of one batch on its device: the index tensors, and each chunk's mask when the
/// whole fits [`MASK_BUDGET`].
struct BatchMasks {
    key: MaskKey,
    /// `[b, 1, 1, 1]` u32: first visible key of each row.
    starts: Tensor,
    /// `[1, 1, 1, s]` u32: key positions.
    keys: Tensor,
    /// One per chunk, in order; empty when over budget.
    chunks: Vec<ChunkMask>,
}

thread_local! {
    /// The last batch's masks (one forward's layers run on one thread, one after another).
    static LAST_MASKS: RefCell<Option<Arc<BatchMasks>>> = const { RefCell::new(None) };
    static MASKS_BUILT: Cell<usize> = const { Cell::new(0) };
}

/// How many times this thread has built a batch's masks (index tensors and chunk masks): once
/// per distinct batch, not once per layer or call.
pub fn masks_built() -> usize {
    MASKS_BUILT.with(Cell::get)
}

impl BatchMasks {
    /// The masks for `key`: the last batch's when it is the same, else built (and kept).
    fn for_key(dev: &Device, key: MaskKey) -> Result<Arc<Self>> {
        let last = LAST_MASKS.with(|l| l.borrow().as_ref().filter(|m| m.key == key).cloned());
        if let Some(m) = last {
            return Ok(m);
        }
        let m = Arc::new(Self::build(dev, key)?);
        MASKS_BUILT.with(|c| c.set(c.get() + 1));
        LAST_MASKS.with(|l| *l.borrow_mut() = Some(m.clone()));
        Ok(m)
    }

    fn build(dev: &Device, key: MaskKey) -> Result<Self> {
        let MaskKey { b, t, s, chunk, .. } = key;
        let starts: Vec<u32> = key.starts.iter().map(|&x| x as u32).collect();
        let mut m = Self {
            starts: Tensor::from_vec(starts, (b, 1, 1, 1), dev)?,
            keys: Tensor::arange(0u32, s as u32, dev)?.reshape((1, 1, 1, s))?,
            chunks: Vec::new(),
            key,
        };
        if b * t * s <= MASK_BUDGET {
            m.chunks = (0..t)
                .step_by(chunk)
                .map(|c0| m.chunk_mask(dev, c0, chunk.min(t - c0)))
                .collect::<Result<_>>()?;
        }
        Ok(m)
    }

    /// Query `i` sits at key position `i + s - t` and sees keys `start ..= i + s - t`.
    fn chunk_mask(&self, dev: &Device, c0: usize, n: usize) -> Result<ChunkMask> {
        let first = (c0 + self.key.s - self.key.t) as u32;
        let qpos = Tensor::arange(first, first + n as u32, dev)?.reshape((1, 1, n, 1))?;
        let after_start = self.keys.broadcast_ge(&self.starts)?; // [b, 1, 1, s]
        let causal = self.keys.broadcast_le(&qpos)?; // [1, 1, n, s]
        let visible = after_start.broadcast_mul(&causal)?.to_dtype(DType::F32)?;
        let bias = ((visible - 1.0)? * 1e9)?.unsqueeze(1)?;
        let rows = qpos.broadcast_ge(&self.starts)?.to_dtype(DType::F32)?;
        Ok(ChunkMask { bias, rows })
    }
}

/// One chunk's mask pieces: additive bias `[b, 1, 1, n, s]` (0 visible, -1e9 hidden) and the
/// rows that see at least one key `[b, 1, n, 1]` (1 or 0).
#[derive(Clone)]
struct ChunkMask {
    bias: Tensor,
    rows: Tensor,
}

impl Plan {
    fn new(q: &Tensor, k: &Tensor, starts: &[usize], scale: f64, chunk: usize) -> Result<Self> {
        let (b, hq, t, d) = q.dims4()?;
        let (_, hkv, s, _) = k.dims4()?;
        let chunk = chunk.max(1);
        let key = MaskKey {
            location: q.device().location(),
            b,
            t,
            s,
            chunk,
            starts: starts.to_vec(),
        };
        Ok(Self {
            b,
            hq,
            hkv,
            t,
            s,
            d,
            scale,
            chunk,
            masks: BatchMasks::for_key(q.device(), key)?,
        })
    }

    fn group(&self) -> usize {
        self.hq / self.hkv
    }

    /// Query chunks as (first row, rows).
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.t)
            .step_by(self.chunk)
            .map(|c0| (c0, self.chunk.min(self.t - c0)))
    }

    /// The mask of the chunk starting at query `c0` (`n` rows): the batch's, or built here
    /// when the batch's masks are over budget.
    fn mask(&self, dev: &Device, c0: usize, n: usize) -> Result<ChunkMask> {
        match self.masks.chunks.get(c0 / self.chunk) {
            Some(m) => Ok(m.clone()),
            None => self.masks.chunk_mask(dev, c0, n),
        }
    }

    /// `[b, hq, n, d]` -> `[b, hkv, group * n, d]`: query head `h` reads kv head `h / group`
    /// (HF `repeat_kv`), so the group's queries stack against one kv head without copying k/v.
    fn grouped(&self, x: &Tensor, n: usize) -> Result<Tensor> {
        x.contiguous()?
            .reshape((self.b, self.hkv, self.group() * n, self.d))
    }

    fn ungrouped(&self, x: &Tensor, n: usize) -> Result<Tensor> {
        x.reshape((self.b, self.hq, n, self.d))
    }

    /// Probabilities `[b, hkv, group * n, s]` of one chunk (f32 inputs, grouped queries).
    fn probs(&self, qg: &Tensor, kf: &Tensor, mask: &ChunkMask, n: usize) -> Result<Tensor> {
        let g = self.group();
        let scores = (qg.matmul(&kf.t()?)? * self.scale)?
            .reshape((self.b, self.hkv, g, n, self.s))?
            .broadcast_add(&mask.bias)?;
        crate::reference::softmax_last_dim(&scores)?.reshape((self.b, self.hkv, g * n, self.s))
    }

    /// f32 output `[b, hq, t, d]` of detached inputs.
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let dev = q.device();
        let kf = k.to_dtype(DType::F32)?.contiguous()?;
        let vf = v.to_dtype(DType::F32)?.contiguous()?;
        let mut outs = Vec::new();
        for (c0, n) in self.chunks() {
            let mask = self.mask(dev, c0, n)?;
            let qg = self.grouped(&q.narrow(2, c0, n)?.to_dtype(DType::F32)?, n)?;
            let p = self.probs(&qg, &kf, &mask, n)?;
            let o = self.ungrouped(&p.matmul(&vf)?, n)?;
            outs.push(o.broadcast_mul(&mask.rows)?);
        }
        Tensor::cat(&outs, 2)?.contiguous()
    }

    /// Gradients w.r.t. q, k, v (f32) given the f32 output and its gradient, recomputing each
    /// chunk's probabilities.
    fn backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let dev = q.device();
        let kf = k.to_dtype(DType::F32)?.contiguous()?;
        let vf = v.to_dtype(DType::F32)?.contiguous()?;
        let out = out.to_dtype(DType::F32)?;
        let grad = grad.to_dtype(DType::F32)?;
        let mut dk = Tensor::zeros((self.b, self.hkv, self.s, self.d), DType::F32, dev)?;
        let mut dv = dk.clone();
        let mut dqs = Vec::new();
        for (c0, n) in self.chunks() {
            let mask = self.mask(dev, c0, n)?;
            let qg = self.grouped(&q.narrow(2, c0, n)?.to_dtype(DType::F32)?, n)?;
            // Rows that see no key output a constant zero: no gradient flows through them.
            let dout = grad.narrow(2, c0, n)?.broadcast_mul(&mask.rows)?;
            let dog = self.grouped(&dout, n)?;
            let og = self.grouped(&out.narrow(2, c0, n)?, n)?;
            let p = self.probs(&qg, &kf, &mask, n)?;
            dv = (dv + p.t()?.matmul(&dog)?)?;
            let dp = dog.matmul(&vf.t()?)?;
            let row_dot = (&dog * &og)?.sum_keepdim(D::Minus1)?;
            let ds = (p * dp.broadcast_sub(&row_dot)?)?;
            dqs.push(self.ungrouped(&(ds.matmul(&kf)? * self.scale)?, n)?);
            dk = (dk + (ds.t()?.matmul(&qg)? * self.scale)?)?;
        }
        Ok((Tensor::cat(&dqs, 2)?, dk, dv))
    }
}

/// Attaches an output computed outside the graph to `(q, k, v)`, with the chunked recompute as
/// its backward. The output is handed over once (the op keeps no copy after the forward).
struct Attach {
    out: Mutex<Option<Tensor>>,
    plan: Plan,
}

impl Attach {
    fn take(&self) -> Result<(Tensor, Shape)> {
        let out = self
            .out
            .lock()
            .map_err(|_| candle_core::Error::Msg("chunked attention: poisoned output".into()))?
            .take();
        match out {
            Some(t) => {
                let shape = t.shape().clone();
                Ok((t, shape))
            }
            None => bail!("chunked attention: the attached output was already taken"),
        }
    }
}

impl CustomOp3 for Attach {
    fn name(&self) -> &'static str {
        "chunked-causal-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (out, shape) = self.take()?;
        let (storage, layout) = out.storage_and_layout();
        match &*storage {
            Storage::Cpu(s) => Ok((s.try_clone(layout)?, shape)),
            _ => bail!("chunked attention: output computed off the CPU for a CPU op"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (out, shape) = self.take()?;
        let (storage, layout) = out.storage_and_layout();
        match &*storage {
            Storage::Cuda(s) => Ok((s.try_clone(layout)?, shape)),
            _ => bail!("chunked attention: output computed off the GPU for a CUDA op"),
        }
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = self.plan.backward(
            &q.detach(),
            &k.detach(),
            &v.detach(),
            &res.detach(),
            &grad_res.detach(),
        )?;
        Ok((
            Some(dq.to_dtype(q.dtype())?),
            Some(dk.to_dtype(k.dtype())?),
            Some(dv.to_dtype(v.dtype())?),
        ))
    }
}
