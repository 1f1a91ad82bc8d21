//! Fused causal attention with grouped KV heads: forward with an online (tiled) softmax that
//! never materialises the `[t, s]` score matrix, and a FlashAttention-2 style backward that
//! recomputes probabilities from the saved per-row log-sum-exp.
//!
//! Visibility: query `i` of `t` sits at key position `i + s - t` (so a KV-cache prefix works)
//! and sees keys `key_start[b] ..= i + s - t`; `key_start` hides left padding. A query that sees
//! no key (a padding row) outputs zeros and passes no gradient.

use crate::simd::{self, multiversion};
use crate::storage::f32_slice;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Keys scored per tile of the online softmax.
const KEY_TILE: usize = 64;

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    hq: usize,
    hkv: usize,
    t: usize,
    s: usize,
    d: usize,
}

impl Dims {
    fn group(&self) -> usize {
        self.hq / self.hkv
    }
    /// Inclusive range of keys visible to query `i` of batch row `b`, or None.
    fn visible(&self, key_start: &[usize], b: usize, i: usize) -> Option<(usize, usize)> {
        let lo = key_start[b];
        let hi = i + self.s - self.t;
        (lo <= hi).then_some((lo, hi))
    }
}

fn dims_of(op: &str, ql: &Layout, kl: &Layout, vl: &Layout) -> Result<Dims> {
    let (b, hq, t, d) = ql.shape().dims4()?;
    let (bk, hkv, s, dk) = kl.shape().dims4()?;
    if (bk, dk) != (b, d) || vl.shape() != kl.shape() {
        bail!(
            "{op}: q {:?}, k {:?}, v {:?} must be [b, hq, t, d], [b, hkv, s, d], [b, hkv, s, d]",
            ql.shape(),
            kl.shape(),
            vl.shape()
        );
    }
    if hkv == 0 || hq % hkv != 0 {
        bail!("{op}: query heads {hq} must be a multiple of kv heads {hkv}");
    }
    if s < t {
        bail!("{op}: keys ({s}) must be at least as many as queries ({t})");
    }
    Ok(Dims {
        b,
        hq,
        hkv,
        t,
        s,
        d,
    })
}

/// Forward op on `(q, k, v)`; keeps the per-row log-sum-exp for its backward.
pub(crate) struct CausalAttention {
    pub scale: f32,
    pub key_start: Vec<usize>,
    /// Log-sum-exp of the scaled scores per query row `[b, hq, t]` (NEG_INFINITY: no key).
    lse: Mutex<Vec<f32>>,
}

impl CausalAttention {
    pub(crate) fn new(scale: f32, key_start: Vec<usize>) -> Self {
        Self {
            scale,
            key_start,
            lse: Mutex::new(Vec::new()),
        }
    }
}

multiversion! {
    /// One query row: online softmax over key tiles. Returns the row's log-sum-exp.
    fn forward_row(q: &[f32], k: &[f32], v: &[f32], lo: usize, hi: usize, scale: f32, out: &mut [f32]) -> f32 {
        let d = q.len();
        let mut scores = [0f32; KEY_TILE];
        let (mut m, mut l) = (f32::NEG_INFINITY, 0f32);
        out.iter_mut().for_each(|o| *o = 0.0);
        let mut start = lo;
        while start <= hi {
            let end = (start + KEY_TILE - 1).min(hi);
            let n = end - start + 1;
            let mut tile_max = f32::NEG_INFINITY;
            for (jj, sc) in scores[..n].iter_mut().enumerate() {
                let j = start + jj;
                *sc = scale * simd::dot(q, &k[j * d..(j + 1) * d]);
                tile_max = tile_max.max(*sc);
            }
            let m_new = m.max(tile_max);
            let correction = simd::exp(m - m_new);
            l *= correction;
            out.iter_mut().for_each(|o| *o *= correction);
            for (jj, &sc) in scores[..n].iter().enumerate() {
                let p = simd::exp(sc - m_new);
                l += p;
                let j = start + jj;
                for (o, &vv) in out.iter_mut().zip(&v[j * d..(j + 1) * d]) {
                    *o += p * vv;
                }
            }
            m = m_new;
            start = end + 1;
        }
        let inv = 1.0 / l;
        out.iter_mut().for_each(|o| *o *= inv);
        m + simd::ln(l)
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "oneshot-causal-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims_of(self.name(), ql, kl, vl)?;
        if self.key_start.len() != dims.b {
            bail!(
                "{}: {} key starts for batch {}",
                self.name(),
                self.key_start.len(),
                dims.b
            );
        }
        let q = f32_slice(qs, ql, self.name(), "q")?;
        let k = f32_slice(ks, kl, self.name(), "k")?;
        let v = f32_slice(vs, vl, self.name(), "v")?;
        let Dims { hq, t, s, d, .. } = dims;
        let g = dims.group();
        let mut out = crate::buffer::filled(q.len(), 0f32);
        let mut lse = vec![f32::NEG_INFINITY; dims.b * hq * t];
        if d > 0 {
            out.par_chunks_mut(d)
                .zip(lse.par_iter_mut())
                .enumerate()
                .for_each(|(row, (o, l))| {
                    let (bh, i) = (row / t, row % t);
                    let (bi, h) = (bh / hq, bh % hq);
                    let Some((lo, hi)) = dims.visible(&self.key_start, bi, i) else {
                        return;
                    };
                    let kv = (bi * dims.hkv + h / g) * s * d;
                    let (kh, vh) = (&k[kv..kv + s * d], &v[kv..kv + s * d]);
                    *l = forward_row(&q[row * d..(row + 1) * d], kh, vh, lo, hi, self.scale, o);
                });
        }
        *self.lse.lock().expect("lse lock") = lse;
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // delta_i = <dO_i, O_i>, the softmax-backward row term.
        let delta = (&grad * res)?.sum(3)?.flatten_all()?.to_vec1::<f32>()?;
        let op = CausalAttentionBackward {
            scale: self.scale,
            key_start: self.key_start.clone(),
            lse: self.lse.lock().expect("lse lock").clone(),
            d_out: grad.flatten_all()?.to_vec1::<f32>()?,
            delta,
        };
        let all = q.apply_op3_no_bwd(k, v, &op)?;
        let (nq, nkv) = (q.elem_count(), k.elem_count());
        let dq = all.narrow(0, 0, nq)?.reshape(q.shape())?;
        let dk = all.narrow(0, nq, nkv)?.reshape(k.shape())?;
        let dv = all.narrow(0, nq + nkv, nkv)?.reshape(v.shape())?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// Backward on `(q, k, v)` with everything else carried in the op; returns the flat
/// concatenation `[dq, dk, dv]`.
struct CausalAttentionBackward {
    scale: f32,
    key_start: Vec<usize>,
    lse: Vec<f32>,
    d_out: Vec<f32>,
    delta: Vec<f32>,
}

/// Borrowed inputs of one query row's backward, and the keys `lo..=hi` it sees.
struct RowInputs<'a> {
    q: &'a [f32],
    d_out: &'a [f32],
    lse: f32,
    delta: f32,
    lo: usize,
    hi: usize,
    scale: f32,
}

multiversion! {
    /// Accumulates one query row's contribution into dq (its row), dk and dv (its kv head).
    fn backward_row(
        row: &RowInputs,
        k: &[f32],
        v: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let (d, scale) = (row.q.len(), row.scale);
        for j in row.lo..=row.hi {
            let kj = &k[j * d..(j + 1) * d];
            let vj = &v[j * d..(j + 1) * d];
            let p = simd::exp(scale * simd::dot(row.q, kj) - row.lse);
            let ds = p * (simd::dot(row.d_out, vj) - row.delta) * scale;
            for c in 0..d {
                dv[j * d + c] += p * row.d_out[c];
                dq[c] += ds * kj[c];
                dk[j * d + c] += ds * row.q[c];
            }
        }
    }
}

impl CustomOp3 for CausalAttentionBackward {
    fn name(&self) -> &'static str {
        "oneshot-causal-attention-backward"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims_of(self.name(), ql, kl, vl)?;
        let q = f32_slice(qs, ql, self.name(), "q")?;
        let k = f32_slice(ks, kl, self.name(), "k")?;
        let v = f32_slice(vs, vl, self.name(), "v")?;
        if self.d_out.len() != q.len() || self.lse.len() != q.len() / dims.d.max(1) {
            bail!(
                "{}: saved forward state does not match q {:?}",
                self.name(),
                ql.shape()
            );
        }
        let Dims {
            hq, hkv, t, s, d, ..
        } = dims;
        let g = dims.group();
        let (nq, nkv) = (q.len(), k.len());
        let mut out = crate::buffer::filled(nq + 2 * nkv, 0f32);
        if d > 0 && nq > 0 {
            let (dq, rest) = out.split_at_mut(nq);
            let (dk, dv) = rest.split_at_mut(nkv);
            // One task per (batch, kv head): it owns that head's dk/dv and the dq rows of the
            // query heads sharing it, so no two tasks write the same memory.
            dq.par_chunks_mut(g * t * d)
                .zip(dk.par_chunks_mut(s * d))
                .zip(dv.par_chunks_mut(s * d))
                .enumerate()
                .for_each(|(task, ((dq_g, dk_h), dv_h))| {
                    let (bi, kvh) = (task / hkv, task % hkv);
                    let kv = task * s * d;
                    let (kh, vh) = (&k[kv..kv + s * d], &v[kv..kv + s * d]);
                    for gi in 0..g {
                        let h = kvh * g + gi;
                        for i in 0..t {
                            let Some((lo, hi)) = dims.visible(&self.key_start, bi, i) else {
                                continue;
                            };
                            let r = (bi * hq + h) * t + i;
                            let inputs = RowInputs {
                                q: &q[r * d..(r + 1) * d],
                                d_out: &self.d_out[r * d..(r + 1) * d],
                                lse: self.lse[r],
                                delta: self.delta[r],
                                lo,
                                hi,
                                scale: self.scale,
                            };
                            let dq_row = &mut dq_g[(gi * t + i) * d..(gi * t + i + 1) * d];
                            backward_row(&inputs, kh, vh, dq_row, dk_h, dv_h);
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(out), Shape::from(nq + 2 * nkv)))
    }
}
