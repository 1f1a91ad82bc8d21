//! Fused softmax and log-softmax over the last dim, forward and backward, one pass per row
//! after the max.

use crate::simd::{self, multiversion};
use crate::storage::{f32_slice, min_rows_per_task};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const MIN_ELEMS_PER_TASK: usize = 16 * 1024;

/// Softmax (or log-softmax when `log`) over the last dim of a contiguous f32 tensor.
pub(crate) struct Softmax {
    pub log: bool,
}

/// Backward from `(output, grad_out)`:
/// softmax: dx = y * (g - <g, y>); log-softmax: dx = g - exp(y) * sum(g).
struct SoftmaxBackward {
    log: bool,
}

fn row_len(l: &Layout) -> usize {
    l.shape().dims().last().copied().unwrap_or(1)
}

multiversion! {
    fn softmax_row(x: &[f32], out: &mut [f32]) {
        let m = simd::max(x);
        let mut acc = [0f32; simd::LANES];
        let full = x.len() / simd::LANES * simd::LANES;
        for (oc, xc) in out[..full].chunks_exact_mut(simd::LANES).zip(x[..full].chunks_exact(simd::LANES)) {
            for i in 0..simd::LANES {
                let e = simd::exp(xc[i] - m);
                oc[i] = e;
                acc[i] += e;
            }
        }
        let mut total = simd::reduce_sum(acc);
        for i in full..x.len() {
            let e = simd::exp(x[i] - m);
            out[i] = e;
            total += e;
        }
        let inv = 1.0 / total;
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
}

multiversion! {
    fn log_softmax_row(x: &[f32], out: &mut [f32]) {
        let m = simd::max(x);
        let mut acc = [0f32; simd::LANES];
        let chunks = x.chunks_exact(simd::LANES);
        let tail = chunks.remainder();
        for xc in chunks {
            for i in 0..simd::LANES {
                acc[i] += simd::exp(xc[i] - m);
            }
        }
        let mut total = simd::reduce_sum(acc);
        for &v in tail {
            total += simd::exp(v - m);
        }
        let shift = m + simd::ln(total);
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v - shift;
        }
    }
}

multiversion! {
    fn softmax_backward_row(y: &[f32], g: &[f32], dx: &mut [f32]) {
        let gy = simd::dot(g, y);
        for i in 0..y.len() {
            dx[i] = y[i] * (g[i] - gy);
        }
    }
}

multiversion! {
    fn log_softmax_backward_row(y: &[f32], g: &[f32], dx: &mut [f32]) {
        let gsum = simd::sum(g);
        for i in 0..y.len() {
            dx[i] = g[i] - simd::exp(y[i]) * gsum;
        }
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "oneshot-log-softmax"
        } else {
            "oneshot-softmax"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name(), "x")?;
        let d = row_len(l);
        let mut out = crate::buffer::filled(x.len(), 0f32);
        if d > 0 {
            let rows = out
                .par_chunks_mut(d)
                .zip(x.par_chunks(d))
                .with_min_len(min_rows_per_task(d, MIN_ELEMS_PER_TASK));
            if self.log {
                rows.for_each(|(o, xr)| log_softmax_row(xr, o));
            } else {
                rows.for_each(|(o, xr)| softmax_row(xr, o));
            }
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let dx = res.apply_op2_no_bwd(&grad, &SoftmaxBackward { log: self.log })?;
        Ok(Some(dx))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        if self.log {
            "oneshot-log-softmax-backward"
        } else {
            "oneshot-softmax-backward"
        }
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if yl.shape() != gl.shape() {
            bail!(
                "{}: grad shape {:?} != output shape {:?}",
                self.name(),
                gl.shape(),
                yl.shape()
            );
        }
        let y = f32_slice(ys, yl, self.name(), "output")?;
        let g = f32_slice(gs, gl, self.name(), "grad")?;
        let d = row_len(yl);
        let mut dx = crate::buffer::filled(y.len(), 0f32);
        if d > 0 {
            let rows = dx
                .par_chunks_mut(d)
                .zip(y.par_chunks(d))
                .zip(g.par_chunks(d))
                .with_min_len(min_rows_per_task(d, MIN_ELEMS_PER_TASK));
            if self.log {
                rows.for_each(|((o, yr), gr)| log_softmax_backward_row(yr, gr, o));
            } else {
                rows.for_each(|((o, yr), gr)| softmax_backward_row(yr, gr, o));
            }
        }
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }
}
