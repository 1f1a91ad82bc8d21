//! Access to the raw CPU buffers behind candle tensors, with the checks every kernel needs.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Tensor};

/// The contiguous f32 data a layout addresses, or an error naming the op and operand.
pub(crate) fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
    operand: &str,
) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        other => bail!("{op}: {operand} must be f32, got {:?}", other.dtype()),
    };
    contiguous_part(data, layout, op, operand)
}

/// The contiguous u32 data a layout addresses.
pub(crate) fn u32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
    operand: &str,
) -> Result<&'a [u32]> {
    let data = match storage {
        CpuStorage::U32(v) => v.as_slice(),
        other => bail!("{op}: {operand} must be u32, got {:?}", other.dtype()),
    };
    contiguous_part(data, layout, op, operand)
}

pub(crate) fn contiguous_part<'a, T>(
    data: &'a [T],
    layout: &Layout,
    op: &str,
    operand: &str,
) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: {operand} must be contiguous (layout {layout:?})"),
    }
}

/// Contiguous f32 version of `t` (no copy when it already is one). Both conversions are
/// differentiable, so gradients still reach the caller's tensor.
pub(crate) fn f32_contiguous(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)?.contiguous()
}

/// Whether the fused CPU kernels can run for tensors on this device.
pub(crate) fn on_cpu(t: &Tensor) -> bool {
    t.device().is_cpu()
}

/// Rayon work-splitting granularity: at least `min_elems` elements of work per task, expressed
/// in rows of `row_len` elements.
pub(crate) fn min_rows_per_task(row_len: usize, min_elems: usize) -> usize {
    min_elems.div_ceil(row_len.max(1)).max(1)
}
