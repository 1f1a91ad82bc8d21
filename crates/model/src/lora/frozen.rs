//! One adapted projection, `y = x W^T + s (low B^T)` with `low = dropout(x) A^T`, as a single
//! custom op whose backward gives x, `low` and B their gradients and never forms W's.
//!
//! candle's matmul backward (like the fused products of `oneshot-kernels`) computes `dW` for
//! both operands, tracked or not, and keeps it until the pass ends: with LoRA that is a full
//! fine-tuning's weight-gradient compute and memory for nothing. Built from candle ops the sum
//! would also keep four `[n, out]` tensors per projection alive for the backward (the base
//! product, `low B^T`, its scaled copy, the sum); this op keeps only its output (its inputs x
//! and `low` are kept anyway, `low` is `[n, r]`). The forward runs the base product on the
//! usual fast paths (weight-streaming kernel for bf16 weights, bf16/AMX products).
use crate::layers::{project, MatmulPrecision};
use anyhow::Result;
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use oneshot_kernels as k;

/// `x W^T + scale * low B^T` for x `[n, in]`, W `[out, in]` (frozen), low `[n, r]`,
/// B `[out, r]`; differentiable w.r.t. x, low and B.
pub fn adapted_sum(
    x: &Tensor,
    weight: &Tensor,
    low: &Tensor,
    b: &Tensor,
    scale: f64,
    matmul: MatmulPrecision,
) -> Result<Tensor> {
    let weight = weight.detach();
    let tracked = x.track_op() || low.track_op() || b.track_op();
    if !tracked || !x.device().is_cpu() {
        // No graph (decoding, detached passes), or off the CPU where the op does not run
        // (candle's ops, which also form dW).
        let base = if tracked {
            x.matmul(&weight.to_dtype(x.dtype())?.t()?)?
        } else {
            project(x, &weight, matmul)?
        };
        let up = project(low, b, matmul)?;
        return Ok((base + (up * scale)?.to_dtype(x.dtype())?)?);
    }
    Ok(x.apply_op3(
        low,
        b,
        AdaptedSum {
            weight,
            scale,
            matmul,
        },
    )?)
}

/// `x W^T` for a frozen W (x tracked, W not): the gradient goes to x only.
pub fn frozen_product(x: &Tensor, weight: &Tensor, matmul: MatmulPrecision) -> Result<Tensor> {
    if !x.track_op() || !x.device().is_cpu() {
        return project(x, weight, matmul);
    }
    Ok(x.apply_op1(FrozenProduct {
        weight: weight.detach(),
        matmul,
    })?)
}

struct FrozenProduct {
    weight: Tensor,
    matmul: MatmulPrecision,
}

impl candle_core::CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "oneshot-frozen-projection"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = project(&tensor_of(xs, xl)?, &self.weight, self.matmul).map_err(msg)?;
        storage_of(&y)
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = grad.detach();
        Ok(Some(
            mm(&g, &self.weight.to_dtype(g.dtype())?)?.to_dtype(x.dtype())?,
        ))
    }
}

/// A tensor's values as an owned CPU storage, with its shape.
fn storage_of(y: &Tensor) -> candle_core::Result<(CpuStorage, Shape)> {
    let shape = y.shape().clone();
    let y = y.flatten_all()?;
    let out = match y.dtype() {
        DType::F32 => CpuStorage::F32(y.to_vec1()?),
        DType::BF16 => CpuStorage::BF16(y.to_vec1()?),
        DType::F16 => CpuStorage::F16(y.to_vec1()?),
        d => candle_core::bail!("frozen projection: unsupported dtype {d:?}"),
    };
    Ok((out, shape))
}

struct AdaptedSum {
    weight: Tensor,
    scale: f64,
    matmul: MatmulPrecision,
}

/// A CPU tensor holding a copy of a storage's (contiguous) view.
fn tensor_of(s: &CpuStorage, l: &Layout) -> candle_core::Result<Tensor> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("adapted projection: input is not contiguous");
    };
    let dev = Device::Cpu;
    match s {
        CpuStorage::F32(v) => Tensor::from_slice(&v[start..end], l.shape(), &dev),
        CpuStorage::BF16(v) => Tensor::from_slice(&v[start..end], l.shape(), &dev),
        CpuStorage::F16(v) => Tensor::from_slice(&v[start..end], l.shape(), &dev),
        _ => candle_core::bail!("adapted projection: only f32, bf16 and f16 are supported"),
    }
}

fn msg(e: anyhow::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("{e:#}"))
}

/// `a b` for a `[m, k]`, b `[k, n]`; under the portable level the fixed-order kernel.
fn mm(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if k::isa::is_portable() {
        return k::portable_matmul_nt(a, &b.t()?.contiguous()?);
    }
    a.matmul(b)
}

impl CustomOp3 for AdaptedSum {
    fn name(&self) -> &'static str {
        "oneshot-lora-adapted-projection"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ls: &CpuStorage,
        ll: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, low, b) = (tensor_of(xs, xl)?, tensor_of(ls, ll)?, tensor_of(bs, bl)?);
        let base = project(&x, &self.weight, self.matmul).map_err(msg)?;
        let up = project(&low, &b, self.matmul).map_err(msg)?;
        storage_of(&(base + (up * self.scale)?.to_dtype(x.dtype())?)?)
    }

    fn bwd(
        &self,
        x: &Tensor,
        low: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.detach();
        // dx = dy W (the base) ...
        let dx = mm(&g, &self.weight.to_dtype(g.dtype())?)?.to_dtype(x.dtype())?;
        // ... and the adapter's share: d low = s dy B, dB = s dy^T low (in f32).
        let gs = (g.to_dtype(DType::F32)? * self.scale)?;
        let (low32, b32) = (
            low.detach().to_dtype(DType::F32)?,
            b.detach().to_dtype(DType::F32)?,
        );
        let d_low = mm(&gs, &b32)?.to_dtype(low.dtype())?;
        let d_b = mm(&gs.t()?.contiguous()?, &low32)?.to_dtype(b.dtype())?;
        Ok((Some(dx), Some(d_low), Some(d_b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn gradients_match_the_candle_composition_and_no_weight_gradient_is_formed() {
        let dev = Device::Cpu;
        let var = |shape: (usize, usize)| {
            Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap()
        };
        let (x, w, low, b) = (var((5, 6)), var((4, 6)), var((5, 2)), var((4, 2)));
        let ours = adapted_sum(
            x.as_tensor(),
            w.as_tensor(),
            low.as_tensor(),
            b.as_tensor(),
            1.5,
            MatmulPrecision::F32,
        )
        .unwrap();
        let t = |v: &Var| v.as_tensor().t().unwrap();
        let plain = (x.as_tensor().matmul(&t(&w)).unwrap()
            + (low.as_tensor().matmul(&t(&b)).unwrap() * 1.5).unwrap())
        .unwrap();
        let max = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(max(&ours, &plain) < 1e-5);
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
        for v in [&x, &low, &b] {
            let (a, c) = (
                g_ours.get(v.as_tensor()).unwrap(),
                g_plain.get(v.as_tensor()).unwrap(),
            );
            assert!(max(a, c) < 1e-4);
        }
        assert!(g_ours.get(w.as_tensor()).is_none(), "dW was formed");
        assert!(g_plain.get(w.as_tensor()).is_some());

        // Without an adapter: the frozen product alone.
        let ours = frozen_product(x.as_tensor(), w.as_tensor(), MatmulPrecision::F32).unwrap();
        let plain = x.as_tensor().matmul(&t(&w)).unwrap();
        assert!(max(&ours, &plain) < 1e-5);
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
        let dx = (
            g_ours.get(x.as_tensor()).unwrap(),
            g_plain.get(x.as_tensor()).unwrap(),
        );
        assert!(max(dx.0, dx.1) < 1e-4);
        assert!(g_ours.get(w.as_tensor()).is_none(), "dW was formed");
    }
}
