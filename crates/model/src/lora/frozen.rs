//! `x W^T` for a frozen W whose backward gives the input's gradient only.
//!
//! candle's matmul backward (and the fused products of `oneshot-kernels`) compute `dW` for
//! both operands, tracked or not, and keep it in the gradient store until the pass ends: with
//! LoRA that is a full fine-tuning's weight-gradient compute and memory for nothing. Here the
//! product runs detached on the usual fast paths, and a custom op re-attaches the result to
//! x's graph with `dx = dy W` as its only gradient.
use crate::layers::{project, MatmulPrecision};
use anyhow::Result;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use oneshot_kernels as k;

/// `x W^T` (x `[n, in]`, W `[out, in]`) with no gradient for W.
pub fn frozen_product(x: &Tensor, weight: &Tensor, matmul: MatmulPrecision) -> Result<Tensor> {
    let weight = weight.detach();
    let y = project(&x.detach(), &weight, matmul)?;
    if !x.track_op() {
        return Ok(y);
    }
    if !x.device().is_cpu() {
        // The re-attaching op is CPU-only; elsewhere candle's matmul (which also forms dW).
        return Ok(x.matmul(&weight.to_dtype(x.dtype())?.t()?)?);
    }
    Ok(x.apply_op2(&y, Reattach { weight })?)
}

/// Forward: a copy of its second input (the detached product). Backward: `dy W` to the first.
struct Reattach {
    weight: Tensor,
}

impl CustomOp2 for Reattach {
    fn name(&self) -> &'static str {
        "oneshot-lora-frozen-product"
    }

    fn cpu_fwd(
        &self,
        _xs: &CpuStorage,
        _xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = yl.contiguous_offsets() else {
            candle_core::bail!("frozen product: the detached product is not contiguous");
        };
        let out = match ys {
            CpuStorage::F32(v) => CpuStorage::F32(v[start..end].to_vec()),
            CpuStorage::BF16(v) => CpuStorage::BF16(v[start..end].to_vec()),
            CpuStorage::F16(v) => CpuStorage::F16(v[start..end].to_vec()),
            _ => candle_core::bail!("frozen product: only f32, bf16 and f16 are supported"),
        };
        Ok((out, yl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.detach();
        let w = self.weight.to_dtype(g.dtype())?;
        let dx = if k::isa::is_portable() {
            // The fixed-order product keeps the portable level's bits independent of the CPU.
            k::portable_matmul_nt(&g, &w.t()?.contiguous()?)
                .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?
        } else {
            g.matmul(&w)?
        };
        Ok((Some(dx.to_dtype(x.dtype())?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn input_gradient_matches_the_plain_product_and_no_weight_gradient_is_formed() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 6), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 6), &dev).unwrap()).unwrap();
        let ours = frozen_product(x.as_tensor(), w.as_tensor(), MatmulPrecision::F32).unwrap();
        let plain = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        let d = (&ours - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        let coef = Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap();
        let g_ours = (ours * &coef)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_plain = (plain * &coef)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let dx = (g_ours.get(x.as_tensor()).unwrap() - g_plain.get(x.as_tensor()).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(dx.to_scalar::<f32>().unwrap() < 1e-5);
        assert!(g_ours.get(w.as_tensor()).is_none(), "dW was formed");
        assert!(g_plain.get(w.as_tensor()).is_some());
    }
}
