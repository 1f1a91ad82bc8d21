//! Fused RMSNorm: forward `x * rsqrt(mean(x^2) + eps) * w` and its backward in one pass per row.

use crate::simd::{self, multiversion};
use crate::storage::{f32_slice, min_rows_per_task};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Most row blocks (and dweight partials) of the backward pass: enough tasks for any
/// machine's threads to share.
const DWEIGHT_BLOCKS: usize = 64;

/// Rows of work handed to one rayon task (keeps tiny rows from drowning in scheduling).
const MIN_ELEMS_PER_TASK: usize = 16 * 1024;

/// Forward op on `x: [n, d]`, `weight: [d]`, both contiguous f32.
pub(crate) struct RmsNorm {
    pub eps: f32,
}

/// Backward op on `(x, weight, grad_out)`; returns `[n + 1, d]`: rows `0..n` are `dx`, row `n`
/// is `dweight`, so one buffer carries both gradients and the caller narrows views out of it.
struct RmsNormBackward {
    eps: f32,
}

fn check_shapes(op: &str, x: &Layout, w: &Layout) -> Result<(usize, usize)> {
    let (n, d) = x.shape().dims2()?;
    if w.shape().dims() != [d] {
        bail!(
            "{op}: weight shape {:?} does not match last dim {d} of x",
            w.shape()
        );
    }
    Ok((n, d))
}

multiversion! {
    fn forward_row(x: &[f32], w: &[f32], out: &mut [f32], eps: f32) {
        let inv_rms = 1.0 / (simd::dot(x, x) / x.len() as f32 + eps).sqrt();
        for ((o, &xv), &wv) in out.iter_mut().zip(x).zip(w) {
            *o = xv * inv_rms * wv;
        }
    }
}

multiversion! {
    /// dx = r * (g*w - x * r^2 * <g*w, x> / d), dweight += g * x * r, with r = rsqrt(mean(x^2)+eps).
    fn backward_row(x: &[f32], w: &[f32], g: &[f32], dx: &mut [f32], dw: &mut [f32], eps: f32) {
        let d = x.len() as f32;
        let inv_rms = 1.0 / (simd::dot(x, x) / d + eps).sqrt();
        // <g*w, x> with lane accumulators.
        let mut acc = [0f32; simd::LANES];
        let mut tail_sum = 0f32;
        let full = x.len() / simd::LANES * simd::LANES;
        for ((xc, wc), gc) in x[..full]
            .chunks_exact(simd::LANES)
            .zip(w[..full].chunks_exact(simd::LANES))
            .zip(g[..full].chunks_exact(simd::LANES))
        {
            for i in 0..simd::LANES {
                acc[i] += gc[i] * wc[i] * xc[i];
            }
        }
        for i in full..x.len() {
            tail_sum += g[i] * w[i] * x[i];
        }
        let gwx = simd::reduce_sum(acc) + tail_sum;
        let coef = inv_rms * inv_rms * inv_rms * gwx / d;
        for i in 0..x.len() {
            dx[i] = inv_rms * g[i] * w[i] - coef * x[i];
            dw[i] += g[i] * x[i] * inv_rms;
        }
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "oneshot-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, d) = check_shapes(self.name(), xl, wl)?;
        let x = f32_slice(xs, xl, self.name(), "x")?;
        let w = f32_slice(ws, wl, self.name(), "weight")?;
        let mut out = crate::buffer::filled(n * d, 0f32);
        if d > 0 {
            out.par_chunks_mut(d)
                .zip(x.par_chunks(d))
                .with_min_len(min_rows_per_task(d, MIN_ELEMS_PER_TASK))
                .for_each(|(o, xr)| forward_row(xr, w, o, self.eps));
        }
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(0)?;
        let grad = grad.contiguous()?;
        let both = x.apply_op3_no_bwd(weight, &grad, &RmsNormBackward { eps: self.eps })?;
        let dx = both.narrow(0, 0, n)?;
        let dw = both.get(n)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "oneshot-rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, d) = check_shapes(self.name(), xl, wl)?;
        if gl.shape() != xl.shape() {
            bail!(
                "{}: grad shape {:?} != x shape {:?}",
                self.name(),
                gl.shape(),
                xl.shape()
            );
        }
        let x = f32_slice(xs, xl, self.name(), "x")?;
        let w = f32_slice(ws, wl, self.name(), "weight")?;
        let g = f32_slice(gs, gl, self.name(), "grad")?;
        let mut out = crate::buffer::filled((n + 1) * d, 0f32);
        if d > 0 && n > 0 {
            let (dx, dw_total) = out.split_at_mut(n * d);
            // Each task owns a block of rows and a private dweight partial; partials are summed
            // afterwards in block order, so no locking. The blocks depend on n only (at most
            // DWEIGHT_BLOCKS of them), never on the thread count, so dweight has the same bits
            // with any number of threads.
            let block_rows = n.div_ceil(DWEIGHT_BLOCKS).max(1);
            let block = block_rows * d;
            let partials: Vec<Vec<f32>> = dx
                .par_chunks_mut(block)
                .zip(x.par_chunks(block))
                .zip(g.par_chunks(block))
                .map(|((dxb, xb), gb)| {
                    let mut dw = vec![0f32; d];
                    for ((dxr, xr), gr) in dxb.chunks_mut(d).zip(xb.chunks(d)).zip(gb.chunks(d)) {
                        backward_row(xr, w, gr, dxr, &mut dw, self.eps);
                    }
                    dw
                })
                .collect();
            for p in &partials {
                for (t, v) in dw_total.iter_mut().zip(p) {
                    *t += v;
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n + 1, d))))
    }
}
