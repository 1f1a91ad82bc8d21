//! Fused SwiGLU gate `silu(gate) * up` and its backward, elementwise over flat buffers.

use crate::simd::{self, multiversion};
use crate::storage::f32_slice;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

pub(crate) struct SiluMul;

/// Backward from `(gate, up, grad_out)`; returns `[2, ...shape]`: dgate then dup.
struct SiluMulBackward;

fn same_shape(op: &str, a: &Layout, b: &Layout, what: &str) -> Result<()> {
    if a.shape() != b.shape() {
        bail!(
            "{op}: {what} shape {:?} != gate shape {:?}",
            b.shape(),
            a.shape()
        );
    }
    Ok(())
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + simd::exp(-x))
}

multiversion! {
    fn forward_chunk(gate: &[f32], up: &[f32], out: &mut [f32]) {
        for i in 0..out.len() {
            out[i] = gate[i] * sigmoid(gate[i]) * up[i];
        }
    }
}

multiversion! {
    /// d silu(x)/dx = s * (1 + x * (1 - s)) with s = sigmoid(x).
    fn backward_chunk(gate: &[f32], up: &[f32], g: &[f32], dgate: &mut [f32], dup: &mut [f32]) {
        for i in 0..g.len() {
            let s = sigmoid(gate[i]);
            dgate[i] = g[i] * up[i] * s * (1.0 + gate[i] * (1.0 - s));
            dup[i] = g[i] * gate[i] * s;
        }
    }
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "oneshot-silu-mul"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(self.name(), gl, ul, "up")?;
        let gate = f32_slice(gs, gl, self.name(), "gate")?;
        let up = f32_slice(us, ul, self.name(), "up")?;
        let mut out = crate::buffer::filled(gate.len(), 0f32);
        out.par_chunks_mut(CHUNK)
            .zip(gate.par_chunks(CHUNK))
            .zip(up.par_chunks(CHUNK))
            .for_each(|((o, g), u)| forward_chunk(g, u, o));
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let both = gate.apply_op3_no_bwd(up, &grad, &SiluMulBackward)?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

impl CustomOp3 for SiluMulBackward {
    fn name(&self) -> &'static str {
        "oneshot-silu-mul-backward"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(self.name(), gl, ul, "up")?;
        same_shape(self.name(), gl, rl, "grad")?;
        let gate = f32_slice(gs, gl, self.name(), "gate")?;
        let up = f32_slice(us, ul, self.name(), "up")?;
        let g = f32_slice(rs, rl, self.name(), "grad")?;
        let n = gate.len();
        let mut out = crate::buffer::filled(2 * n, 0f32);
        let (dgate, dup) = out.split_at_mut(n);
        dgate
            .par_chunks_mut(CHUNK)
            .zip(dup.par_chunks_mut(CHUNK))
            .zip(gate.par_chunks(CHUNK))
            .zip(up.par_chunks(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|((((dg, du), ga), u), gr)| backward_chunk(ga, u, gr, dg, du));
        let mut dims = vec![2];
        dims.extend_from_slice(gl.shape().dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}
