//! Fused token log-probability + entropy of temperature-scaled logits.
//!
//! Forward reads each logits row twice (max, then exp-sums) and writes four f32 numbers per row:
//! `[logp, entropy, lse, mean_z]` where `z = logits / T`, `lse = logsumexp(z)` and
//! `mean_z = sum softmax(z) * z`. The last two are kept so the backward needs a single pass per
//! row (recomputing `p = exp(z - lse)` on the fly) and writes the only `[n, V]` buffer: dlogits.

use crate::simd::{self, multiversion};
use crate::storage::{contiguous_part, f32_slice, u32_slice};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// Columns of the forward output.
pub(crate) const COLS: usize = 4;
pub(crate) const COL_LOGP: usize = 0;
pub(crate) const COL_ENTROPY: usize = 1;
const COL_LSE: usize = 2;
const COL_MEAN_Z: usize = 3;

/// Logit element types read natively (no f32 copy of the logits is made).
pub(crate) trait Logit: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Logit for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Logit for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        // bf16 is the top half of an f32: a shift, which vectorises (half's version branches).
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl Logit for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// Forward op on `(logits [n, V], targets [n] u32)`, output `[n, COLS]` f32.
pub(crate) struct LogprobEntropy {
    pub inv_temp: f32,
}

/// Backward op on `(logits, targets, aux [n, 2*COLS])` where `aux` = forward output then its
/// gradient; output dlogits `[n, V]` in the logits dtype.
struct LogprobEntropyBackward {
    inv_temp: f32,
}

fn check_inputs(op: &str, ll: &Layout, tl: &Layout, targets: &[u32]) -> Result<(usize, usize)> {
    let (n, v) = ll.shape().dims2()?;
    if tl.shape().dims() != [n] {
        bail!(
            "{op}: targets shape {:?} must be [{n}] to match logits {:?}",
            tl.shape(),
            ll.shape()
        );
    }
    if let Some((row, &t)) = targets.iter().enumerate().find(|(_, &t)| t as usize >= v) {
        bail!("{op}: target {t} at row {row} is out of range for vocabulary size {v}");
    }
    Ok((n, v))
}

multiversion! {
    /// Returns `[logp, entropy, lse, mean_z]` for one row.
    fn forward_row<T: Logit>(row: &[T], target: usize, inv_temp: f32) -> [f32; COLS] {
        // max of z = max of logits * inv_temp, as inv_temp > 0.
        let mut acc_max = [f32::NEG_INFINITY; simd::LANES];
        let chunks = row.chunks_exact(simd::LANES);
        let tail = chunks.remainder();
        let mut has_nan = false;
        for c in chunks {
            for i in 0..simd::LANES {
                let v = c[i].to_f32();
                acc_max[i] = if v > acc_max[i] { v } else { acc_max[i] };
                has_nan |= v.is_nan();
            }
        }
        let mut m = acc_max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in tail {
            let v = v.to_f32();
            m = if v > m { v } else { m };
            has_nan |= v.is_nan();
        }
        if has_nan {
            return [f32::NAN; COLS];
        }
        let m = m * inv_temp;
        // With u = z - m: s = sum e^u, su = sum e^u * u. Then lse = m + ln s and
        // entropy = ln s - su/s, a sum of two non-negative terms (no cancellation).
        let mut acc_s = [0f32; simd::LANES];
        let mut acc_su = [0f32; simd::LANES];
        let chunks = row.chunks_exact(simd::LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for i in 0..simd::LANES {
                let u = c[i].to_f32() * inv_temp - m;
                let e = simd::exp(u);
                acc_s[i] += e;
                acc_su[i] += e * u;
            }
        }
        let (mut s, mut su) = (simd::reduce_sum(acc_s), simd::reduce_sum(acc_su));
        for v in tail {
            let u = v.to_f32() * inv_temp - m;
            let e = simd::exp(u);
            s += e;
            su += e * u;
        }
        let log_s = simd::ln(s);
        let lse = m + log_s;
        let logp = row[target].to_f32() * inv_temp - lse;
        let entropy = log_s - su / s;
        [logp, entropy, lse, m + su / s]
    }
}

multiversion! {
    /// dz_j = p_j * (gl + ge - glp + (ge - gh) * (z_j - mean_z)) + glp * [j == target],
    /// dlogit_j = dz_j / T, with p_j = exp(z_j - lse) recomputed here.
    fn backward_row<T: Logit>(row: &[T], target: usize, inv_temp: f32, aux: &[f32], out: &mut [T]) {
        let (lse, mean_z) = (aux[COL_LSE], aux[COL_MEAN_Z]);
        let grads = &aux[COLS..];
        let (g_logp, g_ent) = (grads[COL_LOGP], grads[COL_ENTROPY]);
        let (g_lse, g_mean) = (grads[COL_LSE], grads[COL_MEAN_Z]);
        let base = (g_lse + g_mean - g_logp) * inv_temp;
        let slope = (g_mean - g_ent) * inv_temp;
        for (o, v) in out.iter_mut().zip(row) {
            let z = v.to_f32() * inv_temp;
            let p = simd::exp(z - lse);
            *o = T::from_f32(p * (base + slope * (z - mean_z)));
        }
        let z_t = row[target].to_f32() * inv_temp;
        let p_t = simd::exp(z_t - lse);
        out[target] = T::from_f32(p_t * (base + slope * (z_t - mean_z)) + g_logp * inv_temp);
    }
}

fn forward_rows<T: Logit>(data: &[T], targets: &[u32], v: usize, inv_temp: f32) -> Vec<f32> {
    let mut out = vec![0f32; targets.len() * COLS];
    if v > 0 {
        out.par_chunks_mut(COLS)
            .zip(data.par_chunks(v))
            .zip(targets.par_iter())
            .for_each(|((o, row), &t)| o.copy_from_slice(&forward_row(row, t as usize, inv_temp)));
    }
    out
}

fn backward_rows<T: Logit>(
    data: &[T],
    targets: &[u32],
    aux: &[f32],
    v: usize,
    inv_temp: f32,
) -> Vec<T> {
    let mut out = crate::buffer::filled(data.len(), T::from_f32(0.0));
    if v > 0 {
        out.par_chunks_mut(v)
            .zip(data.par_chunks(v))
            .zip(targets.par_iter())
            .zip(aux.par_chunks(2 * COLS))
            .for_each(|(((o, row), &t), a)| backward_row(row, t as usize, inv_temp, a, o));
    }
    out
}

impl CustomOp2 for LogprobEntropy {
    fn name(&self) -> &'static str {
        "oneshot-logprobs-entropy"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let targets = u32_slice(ts, tl, self.name(), "targets")?;
        let (n, v) = check_inputs(self.name(), ll, tl, targets)?;
        let (op, it) = (self.name(), self.inv_temp);
        let out = match ls {
            CpuStorage::F32(d) => {
                forward_rows(contiguous_part(d, ll, op, "logits")?, targets, v, it)
            }
            CpuStorage::BF16(d) => {
                forward_rows(contiguous_part(d, ll, op, "logits")?, targets, v, it)
            }
            CpuStorage::F16(d) => {
                forward_rows(contiguous_part(d, ll, op, "logits")?, targets, v, it)
            }
            other => bail!(
                "{op}: logits must be f32, bf16 or f16, got {:?}",
                other.dtype()
            ),
        };
        Ok((CpuStorage::F32(out), Shape::from((n, COLS))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let aux = Tensor::cat(&[res, &grad.to_dtype(DType::F32)?], 1)?.contiguous()?;
        let op = LogprobEntropyBackward {
            inv_temp: self.inv_temp,
        };
        let dlogits = logits.apply_op3_no_bwd(targets, &aux, &op)?;
        Ok((Some(dlogits), None))
    }
}

impl CustomOp3 for LogprobEntropyBackward {
    fn name(&self) -> &'static str {
        "oneshot-logprobs-entropy-backward"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        aus: &CpuStorage,
        aul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let targets = u32_slice(ts, tl, self.name(), "targets")?;
        let (n, v) = check_inputs(self.name(), ll, tl, targets)?;
        if aul.shape().dims() != [n, 2 * COLS] {
            bail!(
                "{}: aux shape {:?} must be [{n}, {}]",
                self.name(),
                aul.shape(),
                2 * COLS
            );
        }
        let aux = f32_slice(aus, aul, self.name(), "aux")?;
        let (op, it) = (self.name(), self.inv_temp);
        let out = match ls {
            CpuStorage::F32(d) => CpuStorage::F32(backward_rows(
                contiguous_part(d, ll, op, "logits")?,
                targets,
                aux,
                v,
                it,
            )),
            CpuStorage::BF16(d) => CpuStorage::BF16(backward_rows(
                contiguous_part(d, ll, op, "logits")?,
                targets,
                aux,
                v,
                it,
            )),
            CpuStorage::F16(d) => CpuStorage::F16(backward_rows(
                contiguous_part(d, ll, op, "logits")?,
                targets,
                aux,
                v,
                it,
            )),
            other => bail!(
                "{op}: logits must be f32, bf16 or f16, got {:?}",
                other.dtype()
            ),
        };
        Ok((out, Shape::from((n, v))))
    }
}
