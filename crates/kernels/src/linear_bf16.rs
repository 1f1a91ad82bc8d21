//! Mixed-precision linear `y = x W^T` with forward and backward: operands rounded to bf16,
//! products accumulated in f32, results in f32. These are the semantics of PyTorch's CPU
//! autocast for `linear`, forward and backward, and what makes its training step fast on
//! AVX512_BF16 machines: one `vdpbf16ps` does twice the multiply-adds of an f32 FMA.
//!
//! Every product is one shape, `A B^T` with both operands row-major over the inner dim, so the
//! dot-product kernel of [`crate::linear`] serves all three:
//! - forward `y [m, n] = x [m, k] . W [n, k]^T`
//! - `dx [m, k] = dy [m, n] . (W^T [k, n])^T`
//! - `dW [n, k] = dy^T [n, m] . (x^T [k, m])^T`
//!
//! The transposed bf16 copies are made by one blocked pass that also rounds. A [`Shadow`]
//! holds a weight's bf16 rows and (lazily) its transpose, so a weight used by several calls
//! (the output head, applied chunk by chunk) is converted once.
use crate::gemm_bf16::{PackSource, PackedWeight};
use crate::linear::matmul_nt_bf16;
use crate::linear::WeightRows;
use crate::storage::{contiguous_part, f32_slice};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Elements per rayon task of the elementwise conversion.
const CONVERT_CHUNK: usize = 64 * 1024;
/// Side of the square blocks of the transposing conversion (64 x 64 f32 = 16 KiB, in L1).
const BLOCK: usize = 64;

/// Round to nearest even, as `half` does, but branch-free so the loop vectorises; NaN stays
/// a (quiet) NaN.
#[inline(always)]
fn round_bf16(v: f32) -> bf16 {
    let bits = v.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    let nan = (bits & 0x7fff_ffff) > 0x7f80_0000;
    bf16::from_bits(if nan {
        ((bits >> 16) as u16) | 0x0040
    } else {
        rounded
    })
}

/// A value that can be rounded to bf16 (f32 rounds; bf16 is already there).
pub(crate) trait ToBf16: Copy + Send + Sync {
    fn to_bf16(self) -> bf16;
}
impl ToBf16 for f32 {
    #[inline(always)]
    fn to_bf16(self) -> bf16 {
        round_bf16(self)
    }
}
impl ToBf16 for bf16 {
    #[inline(always)]
    fn to_bf16(self) -> bf16 {
        self
    }
}

/// Elementwise bf16 copy.
pub(crate) fn to_bf16<T: ToBf16>(src: &[T]) -> Vec<bf16> {
    let mut out = crate::buffer::filled(src.len(), bf16::ZERO);
    out.par_chunks_mut(CONVERT_CHUNK)
        .zip(src.par_chunks(CONVERT_CHUNK))
        .for_each(|(o, s)| {
            for (o, &s) in o.iter_mut().zip(s) {
                *o = s.to_bf16();
            }
        });
    out
}

/// bf16 copy of the transpose: `src [rows, cols]` -> `[cols, rows]`, by square blocks so both
/// sides are read and written in cache-line runs; parallel over bands of output rows.
pub(crate) fn transpose_to_bf16<T: ToBf16>(src: &[T], rows: usize, cols: usize) -> Vec<bf16> {
    assert_eq!(src.len(), rows * cols, "transpose_to_bf16: length");
    let mut out = crate::buffer::filled(rows * cols, bf16::ZERO);
    if rows == 0 || cols == 0 {
        return out;
    }
    // One band = BLOCK output rows (= BLOCK source columns).
    out.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(band, dst)| {
            let c0 = band * BLOCK;
            let bc = BLOCK.min(cols - c0);
            for r0 in (0..rows).step_by(BLOCK) {
                let br = BLOCK.min(rows - r0);
                for c in 0..bc {
                    let d = &mut dst[c * rows + r0..c * rows + r0 + br];
                    for (r, d) in d.iter_mut().enumerate() {
                        *d = src[(r0 + r) * cols + c0 + c].to_bf16();
                    }
                }
            }
        });
    out
}

/// bf16 copies of one weight `[n, k]`: its rows, and its transpose `[k, n]` made on first use
/// (only the backward pass needs it).
pub(crate) struct Shadow {
    pub n: usize,
    pub k: usize,
    pub rows: Vec<bf16>,
    transposed: OnceLock<Vec<bf16>>,
}

impl Shadow {
    pub(crate) fn new(rows: Vec<bf16>, n: usize, k: usize) -> Self {
        Self {
            n,
            k,
            rows,
            transposed: OnceLock::new(),
        }
    }

    fn transposed(&self) -> &[bf16] {
        self.transposed
            .get_or_init(|| transpose_to_bf16(&self.rows, self.n, self.k))
    }
}

/// The rows of a weight `[n, k]` stored as f32 or bf16, read in place.
fn weight_rows<'a>(ws: &'a CpuStorage, wl: &Layout) -> Result<WeightRows<'a>> {
    Ok(match ws {
        CpuStorage::F32(v) => WeightRows::F32(contiguous_part(v, wl, "linear_bf16", "w")?),
        CpuStorage::BF16(v) => WeightRows::Bf16(contiguous_part(v, wl, "linear_bf16", "w")?),
        other => bail!(
            "linear_bf16: w must be f32 or bf16, got {:?}",
            other.dtype()
        ),
    })
}

/// Runs `f` on the rows of a CPU weight tensor `[n, k]` (f32 or bf16).
fn with_weight_rows<R>(w: &Tensor, f: impl FnOnce(WeightRows) -> R) -> Result<R> {
    let wc = w.contiguous()?;
    let (storage, layout) = wc.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        bail!("linear_bf16: weight is not on the CPU")
    };
    Ok(f(weight_rows(cpu, layout)?))
}

/// bf16 rows of a CPU weight tensor `[n, k]` (f32 or bf16).
pub(crate) fn shadow_of(w: &Tensor) -> Result<Shadow> {
    let (n, k) = w.dims2()?;
    let rows = with_weight_rows(w, |rows| match rows {
        WeightRows::F32(v) => to_bf16(v),
        WeightRows::Bf16(v) => v.to_vec(),
    })?;
    Ok(Shadow::new(rows, n, k))
}

/// Runs `f` on the contiguous f32 data of a CPU tensor.
fn with_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let tc = t.to_dtype(candle_core::DType::F32)?.contiguous()?;
    let (storage, layout) = tc.storage_and_layout();
    let candle_core::Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        bail!("linear_bf16: {what} is not an f32 CPU tensor")
    };
    Ok(f(contiguous_part(v, layout, "linear_bf16", what)?))
}

/// `a [m, k] . b [n, k]^T` -> f32 `[m, n]`, operands rounded to bf16 ([`matmul_nt_bf16`]).
fn nt<A: PackSource, B: PackSource>(a: &[A], m: usize, k: usize, b: &[B], n: usize) -> Vec<f32> {
    let mut y = crate::buffer::filled(m * n, 0f32);
    matmul_nt_bf16(a, m, k, b, n, &mut y);
    y
}

/// The op on 2-D operands: x `[m, k]` f32, w `[n, k]` f32 or bf16; output f32 `[m, n]`.
pub(crate) struct LinearBf16 {
    /// bf16 copies of w made by the caller, shared across calls; made per call otherwise.
    pub shadow: Option<Arc<Shadow>>,
    /// w packed for the packed kernels, shared across calls (made by the first call with
    /// enough rows).
    pub packed: Option<Arc<OnceLock<PackedWeight>>>,
}

impl LinearBf16 {
    fn shadow(&self, w: &Tensor) -> Result<Arc<Shadow>> {
        match &self.shadow {
            Some(s) => Ok(s.clone()),
            None => Ok(Arc::new(shadow_of(w)?)),
        }
    }
}

impl LinearBf16 {
    /// The backward products straight from dy, x and W in their own layouts (`dx = dy . W`
    /// as an `nn` product, `dW = dy^T . x` as a `tn` product), rounded to bf16 while packing:
    /// no transposed or rounded copies, which cost about a quarter of a 0.5B model's
    /// forward + backward on the copy path below.
    fn bwd_amx(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        use crate::gemm_bf16::{gemm_nn_amx, gemm_tn_amx};
        let products = |rows: WeightRows| {
            with_f32(grad, "grad", |g| {
                with_f32(x, "x", |xv| {
                    let (mut dx, mut dw) = (
                        crate::buffer::filled(m * k, 0f32),
                        crate::buffer::filled(n * k, 0f32),
                    );
                    rayon::join(
                        || match rows {
                            WeightRows::F32(v) => gemm_nn_amx(g, m, n, v, k, &mut dx, false),
                            WeightRows::Bf16(v) => gemm_nn_amx(g, m, n, v, k, &mut dx, false),
                        },
                        || gemm_tn_amx(g, n, m, xv, k, &mut dw, false),
                    );
                    (dx, dw)
                })
            })?
        };
        let (dx, dw) = match &self.shadow {
            Some(s) => products(WeightRows::Bf16(&s.rows))?,
            None => with_weight_rows(w, products)??,
        };
        let dx = Tensor::from_vec(dx, (m, k), x.device())?.to_dtype(x.dtype())?;
        let dw = Tensor::from_vec(dw, (n, k), w.device())?.to_dtype(w.dtype())?;
        Ok((Some(dx), Some(dw)))
    }
}

impl LinearBf16 {
    /// The forward product from the weight packed once ([`LinearBf16::packed`]), packing it
    /// on the first call; `None` where that does not apply (no packed copy requested, too
    /// few rows for the packed kernels, or the active kernel level is not the one packed for).
    fn packed_product(
        &self,
        x: &[f32],
        m: usize,
        ws: &CpuStorage,
        wl: &Layout,
        n: usize,
        k: usize,
    ) -> Result<Option<Vec<f32>>> {
        let Some(lazy) = &self.packed else {
            return Ok(None);
        };
        let Some(kernel) = crate::gemm_bf16::best_kernel_for(crate::isa::active()) else {
            return Ok(None);
        };
        if m < crate::gemm_bf16::MIN_ROWS {
            return Ok(None);
        }
        let packed = match lazy.get() {
            Some(p) => p,
            None => {
                let rows = weight_rows(ws, wl)?;
                lazy.get_or_init(|| match rows {
                    WeightRows::F32(v) => PackedWeight::new(kernel, v, n, k),
                    WeightRows::Bf16(v) => PackedWeight::new(kernel, v, n, k),
                })
            }
        };
        if packed.dims() != (n, k) {
            let (pn, pk) = packed.dims();
            bail!("linear_bf16: the packed copy is [{pn}, {pk}] but w is [{n}, {k}]");
        }
        if packed.kernel() != kernel {
            return Ok(None);
        }
        let mut y = crate::buffer::filled(m * n, 0f32);
        crate::gemm_bf16::gemm_nt_packed(x, m, packed, &mut y, false);
        Ok(Some(y))
    }
}

impl CustomOp2 for LinearBf16 {
    fn name(&self) -> &'static str {
        "oneshot-linear-bf16"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = xl.shape().dims2()?;
        let (n, kw) = wl.shape().dims2()?;
        if k != kw {
            bail!("linear_bf16: x [{m}, {k}] and w [{n}, {kw}] disagree on the inner dim");
        }
        let x = f32_slice(xs, xl, self.name(), "x")?;
        if let Some(y) = self.packed_product(x, m, ws, wl, n, k)? {
            return Ok((CpuStorage::F32(y), Shape::from((m, n))));
        }
        let y = match &self.shadow {
            Some(s) if (s.n, s.k) == (n, k) => nt(x, m, k, &s.rows, n),
            Some(s) => bail!(
                "linear_bf16: the bf16 copy is [{}, {}] but w is [{n}, {k}]",
                s.n,
                s.k
            ),
            // f32 or bf16 weights (e.g. the decoding copy of an f32 model) are read in place.
            None => match weight_rows(ws, wl)? {
                WeightRows::F32(v) => nt(x, m, k, v, n),
                WeightRows::Bf16(v) => nt(x, m, k, v, n),
            },
        };
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let n = w.dim(0)?;
        if m >= crate::gemm_bf16::MIN_ROWS && crate::gemm_bf16::amx_allowed(crate::isa::active()) {
            return self.bwd_amx(x, w, grad, m, k, n);
        }
        let shadow = self.shadow(w)?;
        let (dy, dy_t) = with_f32(grad, "grad", |g| {
            rayon::join(|| to_bf16(g), || transpose_to_bf16(g, m, n))
        })?;
        let x_t = with_f32(x, "x", |xv| transpose_to_bf16(xv, m, k))?;
        let (dx, dw) = rayon::join(
            || nt(&dy, m, n, shadow.transposed(), k),
            || nt(&dy_t, n, m, &x_t, k),
        );
        let dx = Tensor::from_vec(dx, (m, k), x.device())?.to_dtype(x.dtype())?;
        let dw = Tensor::from_vec(dw, (n, k), w.device())?.to_dtype(w.dtype())?;
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // The literals are exact ties between bf16 neighbours and an arbitrary value near pi.
    #[allow(clippy::excessive_precision, clippy::approx_constant)]
    fn rounding_matches_half() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            1.00390625,
            1.005859375,
            -3.1415926,
            1e-40,
            3.4e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
            65504.0,
            1.0 + f32::EPSILON,
        ] {
            assert_eq!(round_bf16(v).to_bits(), bf16::from_f32(v).to_bits(), "{v}");
        }
        assert!(round_bf16(f32::NAN).is_nan());
        // Ties go to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0).to_f32(), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0).to_f32(), 1.0 + 4.0 / 256.0);
    }

    #[test]
    fn transpose_handles_ragged_blocks() {
        for (rows, cols) in [(1, 1), (3, 130), (130, 3), (65, 129), (200, 64)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose_to_bf16(&src, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        t[c * rows + r],
                        bf16::from_f32(src[r * cols + c]),
                        "({rows}x{cols}) at {r},{c}"
                    );
                }
            }
        }
    }
}
