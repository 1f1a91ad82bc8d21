//! Moving parameters and gradients between candle tensors and flat f32 host slices.
//!
//! On the CPU, contiguous f32/bf16/f16 gradients are read in place (no copy) and parameters are
//! written back in place through an `InplaceOp1`, so a step allocates nothing the size of the
//! model. Other devices and dtypes go through an owned f32 copy.

use anyhow::{bail, Result};
use candle_core::{
    CpuStorage, DType, Device, InplaceOp1, Layout, Storage, StorageRef, Tensor, Var,
};
use half::{bf16, f16};
use rayon::prelude::*;

/// Elements per parallel work item: large enough to amortise scheduling, small enough to
/// balance two to a few dozen cores.
pub(crate) const CHUNK: usize = 1 << 15;

/// A flat gradient in its own precision; half-precision values are widened to f32 as the fused
/// pass reads them, so bf16/f16 gradients need no f32 copy.
#[derive(Clone, Copy)]
pub(crate) enum GradView<'a> {
    F32(&'a [f32]),
    BF16(&'a [bf16]),
    F16(&'a [f16]),
}

impl GradView<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            GradView::F32(v) => v.len(),
            GradView::BF16(v) => v.len(),
            GradView::F16(v) => v.len(),
        }
    }

    /// Sum of squares in f64, in parallel.
    pub(crate) fn sum_sq(&self) -> f64 {
        fn go<T: Copy + Into<f32> + Sync>(v: &[T]) -> f64 {
            v.par_chunks(CHUNK)
                .map(|c| c.iter().map(|&x| (x.into() as f64).powi(2)).sum::<f64>())
                .sum()
        }
        match self {
            GradView::F32(v) => go(v),
            GradView::BF16(v) => go(v),
            GradView::F16(v) => go(v),
        }
    }

    pub(crate) fn to_f32_vec(self) -> Vec<f32> {
        let mut out = vec![0f32; self.len()];
        self.add_into(&mut out, 1.0, true);
        out
    }

    /// `dst += scale * self` (or `dst = scale * self` when `overwrite`), in parallel.
    pub(crate) fn add_into(&self, dst: &mut [f32], scale: f32, overwrite: bool) {
        fn go<T: Copy + Into<f32> + Sync>(src: &[T], dst: &mut [f32], scale: f32, overwrite: bool) {
            dst.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| {
                    for (d, &s) in d.iter_mut().zip(s) {
                        let v = s.into() * scale;
                        *d = if overwrite { v } else { *d + v };
                    }
                });
        }
        match self {
            GradView::F32(v) => go(v, dst, scale, overwrite),
            GradView::BF16(v) => go(v, dst, scale, overwrite),
            GradView::F16(v) => go(v, dst, scale, overwrite),
        }
    }
}

/// A gradient held for the duration of a step: borrowed from a CPU tensor when possible.
pub(crate) enum HostGrad<'a> {
    Borrowed(StorageRef<'a>, usize, usize),
    Owned(Vec<f32>),
}

impl HostGrad<'_> {
    pub(crate) fn view(&self) -> GradView<'_> {
        match self {
            HostGrad::Owned(v) => GradView::F32(v),
            HostGrad::Borrowed(guard, start, end) => match &**guard {
                Storage::Cpu(CpuStorage::F32(v)) => GradView::F32(&v[*start..*end]),
                Storage::Cpu(CpuStorage::BF16(v)) => GradView::BF16(&v[*start..*end]),
                Storage::Cpu(CpuStorage::F16(v)) => GradView::F16(&v[*start..*end]),
                _ => unreachable!("HostGrad::Borrowed is only built over CPU float storage"),
            },
        }
    }
}

/// Views `t` as a flat gradient without copying when it is a contiguous CPU f32/bf16/f16
/// tensor; anything else (another device or dtype, strided) is copied to f32.
pub(crate) fn host_grad(t: &Tensor) -> Result<HostGrad<'_>> {
    let (guard, layout) = t.storage_and_layout();
    if let (
        Storage::Cpu(CpuStorage::F32(_) | CpuStorage::BF16(_) | CpuStorage::F16(_)),
        Some((start, end)),
    ) = (&*guard, layout.contiguous_offsets())
    {
        return Ok(HostGrad::Borrowed(guard, start, end));
    }
    drop(guard);
    Ok(HostGrad::Owned(
        t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
    ))
}

/// Copies f32 values into the parameter tensor's own storage (converting to its dtype).
struct WriteBack<'a>(&'a [f32]);

impl InplaceOp1 for WriteBack<'_> {
    fn name(&self) -> &'static str {
        "adamw-write-back"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("adamw write-back needs a contiguous parameter")
        };
        if end - start != self.0.len() {
            candle_core::bail!(
                "adamw write-back: {} values for {} elements",
                self.0.len(),
                end - start
            )
        }
        let src = self.0;
        match storage {
            CpuStorage::F32(v) => v[start..end]
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| d.copy_from_slice(s)),
            CpuStorage::BF16(v) => v[start..end]
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| {
                    d.iter_mut()
                        .zip(s)
                        .for_each(|(d, &s)| *d = bf16::from_f32(s))
                }),
            CpuStorage::F16(v) => v[start..end]
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| {
                    d.iter_mut()
                        .zip(s)
                        .for_each(|(d, &s)| *d = f16::from_f32(s))
                }),
            _ => candle_core::bail!("adamw write-back: parameter dtype must be f32, bf16 or f16"),
        }
        Ok(())
    }
}

/// Overwrites the values of `var` with `values` (f32, in the parameter's element order).
pub(crate) fn write_param(var: &Var, values: &[f32]) -> Result<()> {
    if values.len() != var.elem_count() {
        bail!(
            "write_param: {} values for {} elements",
            values.len(),
            var.elem_count()
        );
    }
    match var.device() {
        Device::Cpu => var.as_tensor().inplace_op1(&WriteBack(values))?,
        dev => var.set(&Tensor::from_slice(values, var.shape(), dev)?.to_dtype(var.dtype())?)?,
    }
    Ok(())
}
