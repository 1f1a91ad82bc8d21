//! Fused rotary embedding (HF "rotate_half" convention) with per-row position tables.
//!
//! Forward:  lo = x1*cos - x2*sin, hi = x2*cos + x1*sin (x1, x2 = first/second half of the head).
//! The map is a rotation, so its input gradient is the inverse rotation (sin negated) of the
//! output gradient; table gradients are reductions over heads.

use crate::storage::{f32_slice, min_rows_per_task};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const MIN_ELEMS_PER_TASK: usize = 16 * 1024;

/// Rotation of `x: [b, h, t, d]` by tables `cos, sin: [b, t, d/2]`; `inverse` rotates the other
/// way (used for the backward pass).
pub(crate) struct Rope {
    pub inverse: bool,
}

/// Table gradients from `(x, grad_out)`: returns `[2, b, t, d/2]` holding dcos then dsin.
struct RopeTableGrad {
    inverse: bool,
}

struct Dims {
    b: usize,
    h: usize,
    t: usize,
    d: usize,
}

fn dims_of(op: &str, x: &Layout) -> Result<Dims> {
    let (b, h, t, d) = x.shape().dims4()?;
    if d % 2 != 0 {
        bail!("{op}: head dim {d} must be even");
    }
    Ok(Dims { b, h, t, d })
}

fn check_table(op: &str, name: &str, dims: &Dims, l: &Layout) -> Result<()> {
    if l.shape().dims() != [dims.b, dims.t, dims.d / 2] {
        bail!(
            "{op}: {name} shape {:?} must be [b, t, d/2] = [{}, {}, {}]",
            l.shape(),
            dims.b,
            dims.t,
            dims.d / 2
        );
    }
    Ok(())
}

#[inline(always)]
fn rotate_row(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32], sign: f32) {
    let half = cos.len();
    let (x1, x2) = x.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    for i in 0..half {
        let s = sign * sin[i];
        o1[i] = x1[i] * cos[i] - x2[i] * s;
        o2[i] = x2[i] * cos[i] + x1[i] * s;
    }
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "oneshot-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims_of(self.name(), xl)?;
        check_table(self.name(), "cos", &dims, cl)?;
        check_table(self.name(), "sin", &dims, sl)?;
        let x = f32_slice(xs, xl, self.name(), "x")?;
        let cos = f32_slice(cs, cl, self.name(), "cos")?;
        let sin = f32_slice(ss, sl, self.name(), "sin")?;
        let Dims { h, t, d, .. } = dims;
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = crate::buffer::filled(x.len(), 0f32);
        if d > 0 {
            // One row = one (batch, head, token); its table row is (batch, token).
            out.par_chunks_mut(d)
                .zip(x.par_chunks(d))
                .enumerate()
                .with_min_len(min_rows_per_task(d, MIN_ELEMS_PER_TASK))
                .for_each(|(row, (o, xr))| {
                    let (bi, ti) = (row / (h * t), row % t);
                    let tab = (bi * t + ti) * half;
                    rotate_row(xr, &cos[tab..tab + half], &sin[tab..tab + half], o, sign);
                });
        }
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = grad.apply_op3_no_bwd(
            cos,
            sin,
            &Rope {
                inverse: !self.inverse,
            },
        )?;
        // Position tables are usually constants: skip their reduction unless someone needs it.
        if !(cos.track_op() || sin.track_op()) {
            return Ok((Some(dx), None, None));
        }
        let tables = x.apply_op2_no_bwd(
            &grad,
            &RopeTableGrad {
                inverse: self.inverse,
            },
        )?;
        Ok((Some(dx), Some(tables.get(0)?), Some(tables.get(1)?)))
    }
}

impl CustomOp2 for RopeTableGrad {
    fn name(&self) -> &'static str {
        "oneshot-rope-table-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims_of(self.name(), xl)?;
        if gl.shape() != xl.shape() {
            bail!(
                "{}: grad shape {:?} != x shape {:?}",
                self.name(),
                gl.shape(),
                xl.shape()
            );
        }
        let x = f32_slice(xs, xl, self.name(), "x")?;
        let g = f32_slice(gs, gl, self.name(), "grad")?;
        let Dims { b, h, t, d } = dims;
        let half = d / 2;
        let sign = if self.inverse { -1.0f32 } else { 1.0 };
        let mut out = crate::buffer::filled(2 * b * t * half, 0f32);
        if half > 0 {
            let (dcos, dsin) = out.split_at_mut(b * t * half);
            dcos.par_chunks_mut(half)
                .zip(dsin.par_chunks_mut(half))
                .enumerate()
                .with_min_len(min_rows_per_task(h * d, MIN_ELEMS_PER_TASK))
                .for_each(|(row, (dc, ds))| {
                    let (bi, ti) = (row / t, row % t);
                    for hi in 0..h {
                        let off = ((bi * h + hi) * t + ti) * d;
                        let (x1, x2) = x[off..off + d].split_at(half);
                        let (g1, g2) = g[off..off + d].split_at(half);
                        for i in 0..half {
                            dc[i] += g1[i] * x1[i] + g2[i] * x2[i];
                            ds[i] += sign * (g2[i] * x1[i] - g1[i] * x2[i]);
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(out), Shape::from((2, b, t, half))))
    }
}
