//! Differentiable `x W^T` with a summation order fixed by the code, for the portable numeric
//! mode (see [`crate::isa`]): batched x `[B, m, k]` and w `[B, n, k]` give y `[B, m, n]`, each
//! output the portable [`crate::linear::dot`] of an x row and a w row. The backward products
//! are the same kernel on transposed copies (`dx = dy W`, `dW = dy^T x`). Work is split across
//! output columns only, so no sum is ever divided between threads, and neither the CPU nor the
//! thread count changes a bit of the result.
use crate::isa::Isa;
use crate::linear::{matmul_nt_with, WeightRows};
use crate::storage::f32_slice;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

pub(crate) struct PortableMatmulNt;

fn dims3(op: &str, what: &str, l: &Layout) -> Result<(usize, usize, usize)> {
    match l.shape().dims() {
        &[b, r, k] => Ok((b, r, k)),
        d => bail!("{op}: {what} must be 3-D [batch, rows, inner], got {d:?}"),
    }
}

impl CustomOp2 for PortableMatmulNt {
    fn name(&self) -> &'static str {
        "oneshot-portable-matmul-nt"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, m, k) = dims3(self.name(), "x", xl)?;
        let (bw, n, kw) = dims3(self.name(), "w", wl)?;
        if (bw, kw) != (b, k) {
            bail!(
                "{}: x {:?} and w {:?} must share batch and inner dims",
                self.name(),
                xl.shape(),
                wl.shape()
            );
        }
        let x = f32_slice(xs, xl, self.name(), "x")?;
        let w = f32_slice(ws, wl, self.name(), "w")?;
        crate::isa::path::PORTABLE_MATMUL_OP.hit();
        let mut y = crate::buffer::filled(b * m * n, 0f32);
        for i in 0..b {
            matmul_nt_with(
                Isa::Portable,
                &x[i * m * k..(i + 1) * m * k],
                m,
                k,
                WeightRows::F32(&w[i * n * k..(i + 1) * n * k]),
                n,
                &mut y[i * m * n..(i + 1) * m * n],
            );
        }
        Ok((CpuStorage::F32(y), Shape::from((b, m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let t = |a: &Tensor| a.detach().transpose(1, 2)?.contiguous();
        let dy = grad.detach().contiguous()?;
        // dx [B, m, k] = dy [B, m, n] . (w^T [B, k, n])^T
        let dx = dy.apply_op2_no_bwd(&t(w)?, &PortableMatmulNt)?;
        // dw [B, n, k] = dy^T [B, n, m] . (x^T [B, k, m])^T
        let dw = t(&dy)?.apply_op2_no_bwd(&t(x)?, &PortableMatmulNt)?;
        Ok((Some(dx), Some(dw)))
    }
}
