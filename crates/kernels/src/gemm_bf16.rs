//! Packed bf16 GEMM for many rows: `y [m, n] (+)= x [m, k] . w [n, k]^T`, bf16 operands,
//! f32 accumulation, with AVX512_BF16's `vdpbf16ps`.
//!
//! Why a second kernel next to the dot-product tiles of [`crate::linear`]: those compute each
//! output as a dot product (8 vector loads per 16 multiply-add instructions and a horizontal
//! sum per output), which is right for decoding, where the weights stream once, but leaves
//! most of the multiplier idle at hundreds of rows (forward and backward of a training step).
//! Here the operands are repacked so the inner loop is an outer product: per pair of inner
//! indices, two vectors of 16 weight-row pairs and one broadcast activation pair per row feed
//! `MR x 2` accumulators (24 of the 32 registers), i.e. 14 loads per 24 `vdpbf16ps`.
//!
//! Blocking (GotoBLAS / BLIS style): the inner dim is cut into blocks of `KC`; per block, a
//! block of `MC` activation rows is packed once (`MC x KC` bf16 = 288 KiB, in L2) and shared by
//! all threads; each task packs one micro-panel of `NR` weight rows (`NR x KC` = 16 KiB, in
//! L1) and runs it against every `MR`-row panel of the block. Odd `k`, and rows or columns that
//! do not fill a panel, are zero-padded in the packed copies, so the micro-kernel has no edge
//! cases; only the stores are masked.
// The bf16 kernels run only on x86_64 (no other CPU reports their features); elsewhere
// their entry points compile but are never reached.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables))]
use crate::isa::Isa;
use crate::linear_bf16::ToBf16;
use half::bf16;
use rayon::prelude::*;

/// Rows of x per micro-tile.
pub(crate) const MR: usize = 12;
/// Rows of w (output columns) per micro-tile: two 16-lane vectors.
pub(crate) const NR: usize = 32;
/// Fewest rows of x for which the packed kernels beat the dot-product tiles of
/// [`crate::linear`] (their padding to whole micro-tiles costs little from here on).
pub(crate) const MIN_ROWS: usize = 2 * MR;
/// Inner-dim values per block (a multiple of 2: the kernel consumes pairs).
const KC: usize = 256;
/// x rows per packed block.
const MC: usize = 48 * MR;

/// Whether the CPU runs this kernel (a safety check; which kernel runs is decided by
/// [`best_kernel_for`] from the level of [`crate::isa`]).
pub(crate) fn available() -> bool {
    crate::isa::detected().allows(Isa::Avx512Bf16)
}

/// Whether the CPU has AMX-BF16 and AMX-TILE and the OS lets this process use the tile
/// state (asked once per process). Part of [`crate::isa::detected`].
pub(crate) fn amx_supported() -> bool {
    amx::supported()
}

/// A pair of bf16 values as one u32, low half first (the lane layout of `vdpbf16ps`).
#[inline(always)]
fn pair<T: ToBf16>(lo: T, hi: T) -> u32 {
    lo.to_bf16().to_bits() as u32 | ((hi.to_bf16().to_bits() as u32) << 16)
}

/// Element types the packers read: f32 (rounded to bf16 while packing, so an f32 weight needs
/// no bf16 copy) or bf16.
pub(crate) trait PackSource: ToBf16 {
    const IS_F32: bool;
    /// The values as bf16: borrowed when they already are, rounded otherwise (for kernels
    /// that read bf16 rows directly).
    fn bf16_rows(s: &[Self]) -> std::borrow::Cow<'_, [bf16]>;
}
impl PackSource for f32 {
    const IS_F32: bool = true;
    fn bf16_rows(s: &[f32]) -> std::borrow::Cow<'_, [bf16]> {
        std::borrow::Cow::Owned(crate::linear_bf16::to_bf16(s))
    }
}
impl PackSource for bf16 {
    const IS_F32: bool = false;
    fn bf16_rows(s: &[bf16]) -> std::borrow::Cow<'_, [bf16]> {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Packs rows `r0..r0 + width` (rows past `total_rows` read as zero) of a row-major `[_, k]`
/// matrix, inner range `p0..p0 + kc`, as `[kc/2 pairs][width]` u32: for each pair index, the
/// pairs of all `width` rows side by side (the last pair zero-padded for odd `kc`).
///
/// The packers run only inside the packed kernels, which need AVX512_BF16 (checked here).
#[allow(clippy::too_many_arguments)]
fn pack<T: PackSource>(
    src: &[T],
    k: usize,
    total_rows: usize,
    r0: usize,
    width: usize,
    p0: usize,
    kc: usize,
    out: &mut [u32],
) {
    assert!(available(), "gemm_bf16: the packers need AVX512_BF16");
    assert!(
        out.len() >= kc.div_ceil(2) * width && (r0 + width).min(total_rows) <= src.len() / k.max(1)
    );
    // SAFETY: features checked; rows r0..min(r0 + width, total_rows) of k values exist in src
    // (asserted) and out holds kc/2 (rounded up) rows of width.
    #[cfg(target_arch = "x86_64")]
    return unsafe { vpack::cols(src, k, total_rows, r0, width, p0, kc, out) };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX512_BF16 is x86_64 only")
}

/// Packs x rows `r0..r0 + out.len() / pairs_pad` (zero past `total_rows`), inner range
/// `p0..p0 + kc`, row-major with `pairs_pad` pairs per row (zero past `kc`): the layout of an
/// AMX A tile.
#[allow(clippy::too_many_arguments)]
fn pack_rows<T: PackSource>(
    src: &[T],
    k: usize,
    total_rows: usize,
    r0: usize,
    p0: usize,
    kc: usize,
    pairs_pad: usize,
    out: &mut [u32],
) {
    assert!(available(), "gemm_bf16: the packers need AVX512_BF16");
    assert!(pairs_pad >= kc.div_ceil(2) && out.len().is_multiple_of(pairs_pad));
    // SAFETY: features checked; every row read (< total_rows) holds p0 + kc values.
    #[cfg(target_arch = "x86_64")]
    return unsafe { vpack::rows(src, k, total_rows, r0, p0, kc, pairs_pad, out) };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX512_BF16 is x86_64 only")
}

/// AVX-512 packers: 32 source values become 16 pairs per instruction (`vcvtne2ps2bf16`
/// rounds f32 to nearest even; bf16 is loaded as is).
#[cfg(target_arch = "x86_64")]
mod vpack {
    use super::{pair, PackSource};
    use half::bf16;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn load_pairs<T: PackSource>(p: *const T) -> __m512i {
        if T::IS_F32 {
            let f = p as *const f32;
            let (lo, hi) = (_mm512_loadu_ps(f), _mm512_loadu_ps(f.add(16)));
            // Elements 0..16 of the result come from the second operand.
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
        } else {
            _mm512_loadu_si512(p as *const _)
        }
    }

    /// Pairs `from..pairs` of one row, the last one zero-padded when kc is odd.
    #[inline(always)]
    fn tail_pair<T: PackSource>(s: &[T], q: usize) -> u32 {
        match (s.get(2 * q), s.get(2 * q + 1)) {
            (Some(&a), Some(&b)) => pair(a, b),
            (Some(&a), None) => pair(a.to_bf16(), bf16::ZERO),
            _ => 0,
        }
    }

    /// See [`super::pack`].
    ///
    /// # Safety
    /// AVX-512F/BW/BF16 available; rows below `total_rows` hold `p0 + kc` values; `out`
    /// holds `kc.div_ceil(2) * width` u32.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn cols<T: PackSource>(
        src: &[T],
        k: usize,
        total_rows: usize,
        r0: usize,
        width: usize,
        p0: usize,
        kc: usize,
        out: &mut [u32],
    ) {
        let pairs = kc.div_ceil(2);
        let groups = kc / 32;
        let o = out.as_mut_ptr();
        // Blocks of 16 rows: 16 vectors of 16 pairs are transposed in registers and stored
        // as 16 contiguous runs (the weight panels; width 32).
        if width.is_multiple_of(16) {
            for rb in (0..width).step_by(16) {
                for g in 0..groups {
                    let mut v = [_mm512_setzero_si512(); 16];
                    for (i, v) in v.iter_mut().enumerate() {
                        let row = r0 + rb + i;
                        if row < total_rows {
                            *v = load_pairs(src.as_ptr().add(row * k + p0 + 32 * g));
                        }
                    }
                    let t = transpose16(v);
                    for (c, t) in t.iter().enumerate() {
                        _mm512_storeu_si512(o.add((16 * g + c) * width + rb) as *mut _, *t);
                    }
                }
            }
            if groups * 16 == pairs {
                return;
            }
            // The tail pairs of every row are left to the loop below.
        }
        let g_start = if width.is_multiple_of(16) { groups } else { 0 };
        let mut tmp = [0u32; 16];
        for r in 0..width {
            let row = r0 + r;
            if row >= total_rows {
                for q in 0..pairs {
                    *o.add(q * width + r) = 0;
                }
                continue;
            }
            let s = &src[row * k + p0..row * k + p0 + kc];
            for g in g_start..groups {
                _mm512_storeu_si512(
                    tmp.as_mut_ptr() as *mut _,
                    load_pairs(s.as_ptr().add(32 * g)),
                );
                for (i, &v) in tmp.iter().enumerate() {
                    *o.add((16 * g + i) * width + r) = v;
                }
            }
            for q in 16 * groups..pairs {
                *o.add(q * width + r) = tail_pair(s, q);
            }
        }
    }

    /// Transposes 16 x 16 u32: `out[c][i] = v[i][c]`. Two unpack stages gather, within each
    /// 128-bit lane, column `4L + j` of four rows; two 128-bit-lane shuffles then put the four
    /// row groups side by side.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transpose16(v: [__m512i; 16]) -> [__m512i; 16] {
        // q[g][j]: rows 4g..4g+4, lane L holds column 4L + j.
        let mut q = [[_mm512_setzero_si512(); 4]; 4];
        for g in 0..4 {
            let (a, b, c, d) = (v[4 * g], v[4 * g + 1], v[4 * g + 2], v[4 * g + 3]);
            let (lo_ab, hi_ab) = (_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
            let (lo_cd, hi_cd) = (_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
            q[g][0] = _mm512_unpacklo_epi64(lo_ab, lo_cd);
            q[g][1] = _mm512_unpackhi_epi64(lo_ab, lo_cd);
            q[g][2] = _mm512_unpacklo_epi64(hi_ab, hi_cd);
            q[g][3] = _mm512_unpackhi_epi64(hi_ab, hi_cd);
        }
        let mut out = [_mm512_setzero_si512(); 16];
        for j in 0..4 {
            let s0 = _mm512_shuffle_i32x4::<0x44>(q[0][j], q[1][j]);
            let s1 = _mm512_shuffle_i32x4::<0xEE>(q[0][j], q[1][j]);
            let s2 = _mm512_shuffle_i32x4::<0x44>(q[2][j], q[3][j]);
            let s3 = _mm512_shuffle_i32x4::<0xEE>(q[2][j], q[3][j]);
            out[j] = _mm512_shuffle_i32x4::<0x88>(s0, s2);
            out[4 + j] = _mm512_shuffle_i32x4::<0xDD>(s0, s2);
            out[8 + j] = _mm512_shuffle_i32x4::<0x88>(s1, s3);
            out[12 + j] = _mm512_shuffle_i32x4::<0xDD>(s1, s3);
        }
        out
    }

    /// 32 consecutive values (fewer at `count < 32`, zero-filled) as bf16 in a vector.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn load32<T: PackSource>(p: *const T, count: usize) -> __m512i {
        if T::IS_F32 {
            let f = p as *const f32;
            let m_lo = ((1u32 << count.min(16)) - 1) as __mmask16;
            let m_hi = ((1u64 << count.saturating_sub(16).min(16)) - 1) as __mmask16;
            let (lo, hi) = (
                _mm512_maskz_loadu_ps(m_lo, f),
                _mm512_maskz_loadu_ps(m_hi, f.add(16)),
            );
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
        } else {
            let mask = ((1u64 << count.min(32)) - 1) as __mmask32;
            _mm512_maskz_loadu_epi16(mask, p as *const i16)
        }
    }

    /// See [`super::pack_nn`]: per pair of source rows, two 32-value loads interleaved
    /// element by element into 32 (even, odd) pairs.
    ///
    /// # Safety
    /// AVX-512F/BW/BF16 available; src holds rows p0..p0 + kc of `total_cols` values; out holds
    /// `kc.div_ceil(2) * 32` u32.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn nn<T: PackSource>(
        src: &[T],
        total_cols: usize,
        j0: usize,
        p0: usize,
        kc: usize,
        out: &mut [u32],
    ) {
        // permutex2var_epi16 picks a's element i for index i and b's for 32 + i.
        let mut lo_idx = [0i16; 32];
        let mut hi_idx = [0i16; 32];
        for c in 0..16 {
            lo_idx[2 * c] = c as i16;
            lo_idx[2 * c + 1] = 32 + c as i16;
            hi_idx[2 * c] = 16 + c as i16;
            hi_idx[2 * c + 1] = 48 + c as i16;
        }
        let lo_idx = _mm512_loadu_si512(lo_idx.as_ptr() as *const _);
        let hi_idx = _mm512_loadu_si512(hi_idx.as_ptr() as *const _);
        let count = total_cols.saturating_sub(j0).min(32);
        let o = out.as_mut_ptr();
        for q in 0..kc.div_ceil(2) {
            let p = p0 + 2 * q;
            let even = load32(src.as_ptr().add(p * total_cols + j0), count);
            let odd = if p + 1 < p0 + kc {
                load32(src.as_ptr().add((p + 1) * total_cols + j0), count)
            } else {
                _mm512_setzero_si512()
            };
            _mm512_storeu_si512(
                o.add(q * 32) as *mut _,
                _mm512_permutex2var_epi16(even, lo_idx, odd),
            );
            _mm512_storeu_si512(
                o.add(q * 32 + 16) as *mut _,
                _mm512_permutex2var_epi16(even, hi_idx, odd),
            );
        }
    }

    /// `out [32][pairs_pad] = panel [pairs_pad][32]` transposed, by 16 x 16 blocks.
    ///
    /// # Safety
    /// AVX-512F available; `pairs_pad % 16 == 0`; both slices hold `32 * pairs_pad` u32.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_panel(panel: &[u32], pairs_pad: usize, out: &mut [u32]) {
        debug_assert!(panel.len() >= 32 * pairs_pad && out.len() >= 32 * pairs_pad);
        for qb in (0..pairs_pad).step_by(16) {
            for rb in (0..32).step_by(16) {
                let mut v = [_mm512_setzero_si512(); 16];
                for (i, v) in v.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(panel.as_ptr().add((qb + i) * 32 + rb) as *const _);
                }
                for (c, t) in transpose16(v).iter().enumerate() {
                    _mm512_storeu_si512(
                        out.as_mut_ptr().add((rb + c) * pairs_pad + qb) as *mut _,
                        *t,
                    );
                }
            }
        }
    }

    /// See [`super::pack_rows`].
    ///
    /// # Safety
    /// AVX-512F/BW/BF16 available; rows below `total_rows` hold `p0 + kc` values;
    /// `pairs_pad >= kc.div_ceil(2)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows<T: PackSource>(
        src: &[T],
        k: usize,
        total_rows: usize,
        r0: usize,
        p0: usize,
        kc: usize,
        pairs_pad: usize,
        out: &mut [u32],
    ) {
        let pairs = kc.div_ceil(2);
        let groups = kc / 32;
        for (r, dst) in out.chunks_exact_mut(pairs_pad).enumerate() {
            let row = r0 + r;
            if row >= total_rows {
                dst.fill(0);
                continue;
            }
            let s = &src[row * k + p0..row * k + p0 + kc];
            for g in 0..groups {
                _mm512_storeu_si512(
                    dst.as_mut_ptr().add(16 * g) as *mut _,
                    load_pairs(s.as_ptr().add(32 * g)),
                );
            }
            for q in 16 * groups..pairs {
                dst[q] = tail_pair(s, q);
            }
            dst[pairs..].fill(0);
        }
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges of y (see `gemm_nt_with`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}
impl OutPtr {
    /// Through a method, so closures capture the whole (Sync) wrapper, not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Which micro-kernel runs the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AMX tiles (`tdpbf16ps`, 32 x 32 outputs per micro-tile).
    Amx,
    /// AVX512_BF16 vectors (`vdpbf16ps`, 12 x 32 outputs per micro-tile).
    Avx512,
}

/// Whether level `isa` runs AMX here (the `nn` / `tn` products need it).
pub(crate) fn amx_allowed(isa: Isa) -> bool {
    isa.allows(Isa::Amx) && amx::available()
}

/// The fastest kernel that level `isa` allows on this CPU (and OS), if any.
pub(crate) fn best_kernel_for(isa: Isa) -> Option<Kernel> {
    if amx_allowed(isa) {
        Some(Kernel::Amx)
    } else if isa.allows(Isa::Avx512Bf16) && available() {
        Some(Kernel::Avx512)
    } else {
        None
    }
}

/// `y = x . w^T` (or `y += x . w^T` with `accumulate`) for x `[m, k]`, w `[n, k]`, y `[m, n]`,
/// all row-major, with the chosen kernel (see [`best_kernel_for`]).
///
/// # Panics
/// If that kernel is not available or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_nt_with<X: PackSource, W: PackSource>(
    kernel: Kernel,
    x: &[X],
    m: usize,
    k: usize,
    w: &[W],
    n: usize,
    y: &mut [f32],
    accumulate: bool,
) {
    match kernel {
        Kernel::Amx => {
            assert!(amx::available(), "gemm_bf16: AMX is not available");
            crate::isa::path::GEMM_BF16_AMX.hit();
            gemm_nt_amx(x, m, k, w, n, y, accumulate)
        }
        Kernel::Avx512 => {
            assert!(available(), "gemm_bf16: CPU lacks AVX512_BF16");
            crate::isa::path::GEMM_BF16_AVX512.hit();
            gemm_nt_avx512(x, m, k, w, n, y, accumulate)
        }
    }
}

fn gemm_nt_avx512<X: PackSource, W: PackSource>(
    x: &[X],
    m: usize,
    k: usize,
    w: &[W],
    n: usize,
    y: &mut [f32],
    accumulate: bool,
) {
    assert_eq!(x.len(), m * k, "gemm_bf16: x length");
    assert_eq!(w.len(), n * k, "gemm_bf16: w length");
    blocked(
        &Avx512Tile,
        m,
        k,
        n,
        y,
        accumulate,
        |r0, p0, kc, _pairs, out| pack(x, k, m, r0, MR, p0, kc, out),
        Panels::Pack(|j0, p0, kc, out: &mut [u32]| pack(w, k, n, j0, NR, p0, kc, out)),
    )
}

/// One micro-tile kernel and its blocking, for [`blocked`].
trait TileKernel: Sync {
    /// x rows per micro-tile (the weight side is always `NR` columns).
    const ROWS: usize;
    /// Inner-dim values per block.
    const KC: usize;
    /// x rows per packed block.
    const MC: usize;
    /// Packed pairs per block row for `kc` inner values (the kernel's padding).
    fn pairs_pad(kc: usize) -> usize;
    /// Per-thread setup before a task's first tile, and teardown after its last.
    fn enter(&self) {}
    fn leave(&self) {}
    /// `y[rows, cols] (+)= a . b` for one tile at `dst` (row stride `ld`); stores when
    /// `first`, adds otherwise.
    ///
    /// # Safety
    /// `a` holds `ROWS * pairs_pad`, `b` `pairs_pad * NR` packed u32; the `rows x cols`
    /// block at `dst` is valid and written by this thread only.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        &self,
        a: &[u32],
        b: &[u32],
        pairs_pad: usize,
        dst: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        first: bool,
    );
}

struct Avx512Tile;

impl TileKernel for Avx512Tile {
    const ROWS: usize = MR;
    const KC: usize = KC;
    const MC: usize = MC;
    fn pairs_pad(kc: usize) -> usize {
        kc.div_ceil(2)
    }
    unsafe fn tile(
        &self,
        a: &[u32],
        b: &[u32],
        pairs: usize,
        dst: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        first: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        avx512::micro(a.as_ptr(), b.as_ptr(), pairs, dst, ld, rows, cols, first);
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "the packed kernels are x86_64 only {:?}",
            (a, b, pairs, dst, ld, rows, cols, first)
        );
    }
}

struct AmxTile;

impl TileKernel for AmxTile {
    const ROWS: usize = AMX_MR;
    const KC: usize = AMX_KC;
    const MC: usize = AMX_MC;
    fn pairs_pad(kc: usize) -> usize {
        kc.div_ceil(32) * 16
    }
    fn enter(&self) {
        // SAFETY: AmxTile is only used after `amx::available()` (permission granted); the tile
        // configuration is per thread and set before any tile use.
        unsafe { amx::configure() }
    }
    fn leave(&self) {
        // SAFETY: releases this thread's tile state (configured in `enter`).
        unsafe { amx::release() }
    }
    unsafe fn tile(
        &self,
        a: &[u32],
        b: &[u32],
        pairs_pad: usize,
        dst: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        first: bool,
    ) {
        let steps = pairs_pad / 16;
        if rows == AMX_MR && cols == NR {
            // A whole tile: accumulate in y itself.
            amx::micro(a.as_ptr(), pairs_pad, b.as_ptr(), steps, dst, ld, !first);
            return;
        }
        // An edge tile: through a buffer, then the valid part into y.
        let mut buf = [0f32; AMX_MR * NR];
        amx::micro(
            a.as_ptr(),
            pairs_pad,
            b.as_ptr(),
            steps,
            buf.as_mut_ptr(),
            NR,
            false,
        );
        for r in 0..rows {
            let src = &buf[r * NR..r * NR + cols];
            let dst = std::slice::from_raw_parts_mut(dst.add(r * ld), cols);
            if first {
                dst.copy_from_slice(src);
            } else {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
    }
}

/// The blocked product shared by both kernels: per (row block of `K::MC`, inner block of
/// `K::KC`), the x block is packed once by `pack_a(r0, p0, kc, pairs_pad, panel)` (`K::ROWS`
/// rows from r0) and shared by all tasks; each task takes weight panels (`NR` columns from j0)
/// from `panels` and runs them against every row panel of the block.
#[allow(clippy::too_many_arguments)]
fn blocked<K: TileKernel>(
    kernel: &K,
    m: usize,
    k: usize,
    n: usize,
    y: &mut [f32],
    accumulate: bool,
    pack_a: impl Fn(usize, usize, usize, usize, &mut [u32]) + Sync,
    panels: Panels<impl Fn(usize, usize, usize, &mut [u32]) + Sync>,
) {
    assert_eq!(y.len(), m * n, "gemm_bf16: y length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            y.fill(0.0);
        }
        return;
    }
    let out = OutPtr(y.as_mut_ptr());
    let n_panels = n.div_ceil(NR);
    for i0 in (0..m).step_by(K::MC) {
        let mc = K::MC.min(m - i0);
        let m_panels = mc.div_ceil(K::ROWS);
        for (block, p0) in (0..k).step_by(K::KC).enumerate() {
            let kc = K::KC.min(k - p0);
            let pairs_pad = K::pairs_pad(kc);
            let panel = K::ROWS * pairs_pad;
            let first = p0 == 0 && !accumulate;
            let mut a = crate::buffer::Aligned::filled(m_panels * panel, 0u32);
            a.par_chunks_mut(panel)
                .enumerate()
                .for_each(|(ip, dst)| pack_a(i0 + ip * K::ROWS, p0, kc, pairs_pad, dst));
            // Panels per task: enough tasks for rayon to balance, each long enough to amortise.
            let per_task = n_panels.div_ceil(rayon::current_num_threads() * 8).max(1);
            (0..n_panels.div_ceil(per_task))
                .into_par_iter()
                .for_each(|t| {
                    // Pairs past kc stay zero: the packers write only the first kc / 2 rounded up.
                    let mut scratch = match &panels {
                        Panels::Pack(_) => crate::buffer::Aligned::filled(pairs_pad * NR, 0u32),
                        Panels::Packed(_) => crate::buffer::Aligned::filled(0, 0u32),
                    };
                    kernel.enter();
                    for jp in t * per_task..((t + 1) * per_task).min(n_panels) {
                        let j0 = jp * NR;
                        let b: &[u32] = match &panels {
                            Panels::Pack(pack_b) => {
                                pack_b(j0, p0, kc, &mut scratch);
                                &scratch[..]
                            }
                            Panels::Packed(w) => w.panel(block, jp),
                        };
                        let cols = NR.min(n - j0);
                        for ip in 0..m_panels {
                            let rows = K::ROWS.min(mc - ip * K::ROWS);
                            // SAFETY: a's panel holds ROWS x pairs_pad and b pairs_pad x NR packed
                            // u32; rows `< rows` from i0 + ip * ROWS (< m) and columns `< cols`
                            // from j0 (< n) lie in y, and only this task writes columns j0..j0 + NR.
                            unsafe {
                                let dst = out.get().add((i0 + ip * K::ROWS) * n + j0);
                                kernel.tile(
                                    &a[ip * panel..(ip + 1) * panel],
                                    b,
                                    pairs_pad,
                                    dst,
                                    n,
                                    rows,
                                    cols,
                                    first,
                                )
                            }
                        }
                    }
                    kernel.leave();
                });
        }
    }
}

/// Where the tasks of [`blocked`] get weight panels: packed per call by `pack(j0, p0, kc,
/// panel)`, or read from a weight packed once ([`PackedWeight`]).
enum Panels<'a, F> {
    Pack(F),
    Packed(&'a PackedWeight),
}

/// A weight `[n, k]` packed once in the layout of one packed kernel's weight panels, for many
/// products with it (the projections of every decoding step of a generation): a step of a few
/// dozen rows then reads each panel straight from memory instead of repacking the whole weight,
/// which at decoding's row counts cost about as much as the multiplies themselves.
pub(crate) struct PackedWeight {
    kernel: Kernel,
    n: usize,
    k: usize,
    /// Per inner block, its panels one after another (`pairs_pad * NR` u32 each).
    data: crate::buffer::Aligned<u32>,
    /// Offset of each inner block's first panel in `data`, and that block's panel length.
    blocks: Vec<(usize, usize)>,
}

impl PackedWeight {
    /// Packs `w [n, k]` (f32, rounded to bf16 while packing, or bf16) for `kernel`.
    ///
    /// # Panics
    /// If the CPU does not run `kernel` or `w` is not `n * k` long.
    pub(crate) fn new<W: PackSource>(kernel: Kernel, w: &[W], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "PackedWeight: w length");
        match kernel {
            Kernel::Amx => assert!(amx::available(), "PackedWeight: AMX is not available"),
            Kernel::Avx512 => assert!(available(), "PackedWeight: CPU lacks AVX512_BF16"),
        }
        let (kc_block, pad): (usize, fn(usize) -> usize) = match kernel {
            Kernel::Amx => (AmxTile::KC, AmxTile::pairs_pad),
            Kernel::Avx512 => (Avx512Tile::KC, Avx512Tile::pairs_pad),
        };
        let n_panels = n.div_ceil(NR);
        let mut blocks = Vec::new();
        let mut len = 0;
        for p0 in (0..k).step_by(kc_block.max(1)) {
            let panel = pad(kc_block.min(k - p0)) * NR;
            blocks.push((len, panel));
            len += n_panels * panel;
        }
        // Zeros past each block's kc / 2 pairs and past n: the packers write only the rest.
        let mut data = crate::buffer::Aligned::filled(len, 0u32);
        for (b, p0) in (0..k).step_by(kc_block.max(1)).enumerate() {
            let kc = kc_block.min(k - p0);
            let (start, panel) = blocks[b];
            data[start..start + n_panels * panel]
                .par_chunks_mut(panel)
                .enumerate()
                .for_each(|(jp, out)| pack(w, k, n, jp * NR, NR, p0, kc, out));
        }
        Self {
            kernel,
            n,
            k,
            data,
            blocks,
        }
    }

    /// The kernel whose layout this is.
    pub(crate) fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// `[n, k]` of the packed weight.
    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<u32>()
    }

    fn panel(&self, block: usize, jp: usize) -> &[u32] {
        let (start, len) = self.blocks[block];
        &self.data[start + jp * len..start + (jp + 1) * len]
    }
}

/// `y = x . w^T` (or `y += x . w^T` with `accumulate`) for x `[m, k]` and a weight packed once
/// ([`PackedWeight`]), with the kernel it was packed for.
///
/// # Panics
/// If x or y has the wrong length for the packed weight's shape.
pub(crate) fn gemm_nt_packed<X: PackSource>(
    x: &[X],
    m: usize,
    w: &PackedWeight,
    y: &mut [f32],
    accumulate: bool,
) {
    let (n, k) = (w.n, w.k);
    assert_eq!(x.len(), m * k, "gemm_bf16: x length");
    match w.kernel {
        Kernel::Amx => {
            crate::isa::path::GEMM_BF16_AMX.hit();
            blocked(
                &AmxTile,
                m,
                k,
                n,
                y,
                accumulate,
                |r0, p0, kc, pairs_pad, out| pack_rows(x, k, m, r0, p0, kc, pairs_pad, out),
                Panels::<fn(usize, usize, usize, &mut [u32])>::Packed(w),
            )
        }
        Kernel::Avx512 => {
            crate::isa::path::GEMM_BF16_AVX512.hit();
            blocked(
                &Avx512Tile,
                m,
                k,
                n,
                y,
                accumulate,
                |r0, p0, kc, _pairs, out| pack(x, k, m, r0, MR, p0, kc, out),
                Panels::<fn(usize, usize, usize, &mut [u32])>::Packed(w),
            )
        }
    }
}

/// x rows per AMX micro-tile (two 16-row tiles).
const AMX_MR: usize = 32;
/// Inner-dim values per AMX block: 32 steps of 32 (a weight panel of 64 KiB).
const AMX_KC: usize = 1024;
/// x rows per packed AMX block (512 x 1024 bf16 = 1 MiB, in L2).
const AMX_MC: usize = 512;

/// The AMX product: per (row block, inner block), x is packed as A tiles, each task packs 32
/// weight rows as two B tiles (VNNI pairs, [`pack`]) and runs them against every 32-row
/// panel: 2 x 2 accumulator tiles, 4 `tdpbf16ps` per 32 inner values.
fn gemm_nt_amx<X: PackSource, W: PackSource>(
    x: &[X],
    m: usize,
    k: usize,
    w: &[W],
    n: usize,
    y: &mut [f32],
    accumulate: bool,
) {
    assert_eq!(x.len(), m * k, "gemm_bf16: x length");
    assert_eq!(w.len(), n * k, "gemm_bf16: w length");
    blocked(
        &AmxTile,
        m,
        k,
        n,
        y,
        accumulate,
        |r0, p0, kc, pairs_pad, out| pack_rows(x, k, m, r0, p0, kc, pairs_pad, out),
        Panels::Pack(|j0, p0, kc, out: &mut [u32]| pack(w, k, n, j0, NR, p0, kc, out)),
    )
}

/// `y [m, n] (+)= a [m, k] . b [k, n]` with both operands row-major (the `dx = dy . W` of a
/// linear layer's backward, W read in its own `[out, in]` layout), on AMX.
///
/// # Panics
/// If AMX is not available or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_nn_amx<A: PackSource, B: PackSource>(
    a: &[A],
    m: usize,
    k: usize,
    b: &[B],
    n: usize,
    y: &mut [f32],
    accumulate: bool,
) {
    assert!(amx::available(), "gemm_bf16: AMX is not available");
    crate::isa::path::GEMM_BF16_AMX.hit();
    assert_eq!(a.len(), m * k, "gemm_bf16: a length");
    assert_eq!(b.len(), k * n, "gemm_bf16: b length");
    blocked(
        &AmxTile,
        m,
        k,
        n,
        y,
        accumulate,
        |r0, p0, kc, pairs_pad, out| pack_rows(a, k, m, r0, p0, kc, pairs_pad, out),
        Panels::Pack(|j0, p0, kc, out: &mut [u32]| pack_nn(b, n, j0, p0, kc, out)),
    )
}

/// `y [m, n] (+)= at^T . b` for `at [k, m]` and `b [k, n]`, both row-major (the `dW = dy^T . x`
/// of a linear layer's backward, from dy and x as they are), on AMX.
///
/// # Panics
/// If AMX is not available or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_tn_amx<A: PackSource, B: PackSource>(
    at: &[A],
    m: usize,
    k: usize,
    b: &[B],
    n: usize,
    y: &mut [f32],
    accumulate: bool,
) {
    assert!(amx::available(), "gemm_bf16: AMX is not available");
    crate::isa::path::GEMM_BF16_AMX.hit();
    assert_eq!(at.len(), k * m, "gemm_bf16: a^T length");
    assert_eq!(b.len(), k * n, "gemm_bf16: b length");
    blocked(
        &AmxTile,
        m,
        k,
        n,
        y,
        accumulate,
        |r0, p0, kc, pairs_pad, out| pack_rows_t(at, m, r0, p0, kc, pairs_pad, out),
        Panels::Pack(|j0, p0, kc, out: &mut [u32]| pack_nn(b, n, j0, p0, kc, out)),
    )
}

/// VNNI weight panel from a row-major `src [K, total_cols]`: `out[q][c] = (src[p0 + 2q][j0 + c],
/// src[p0 + 2q + 1][j0 + c])` for the `NR` columns from `j0` (zero past `total_cols`, and for
/// the missing partner of an odd `kc`).
fn pack_nn<T: PackSource>(
    src: &[T],
    total_cols: usize,
    j0: usize,
    p0: usize,
    kc: usize,
    out: &mut [u32],
) {
    assert!(available(), "gemm_bf16: the packers need AVX512_BF16");
    assert!(out.len() >= kc.div_ceil(2) * NR && (p0 + kc) * total_cols <= src.len());
    // SAFETY: features checked; rows p0..p0 + kc of total_cols values exist (asserted).
    #[cfg(target_arch = "x86_64")]
    return unsafe { vpack::nn(src, total_cols, j0, p0, kc, out) };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX512_BF16 is x86_64 only")
}

/// A tiles (as [`pack_rows`]) of `a = at^T` for `at [K, total_rows]` row-major: rows `r0..r0 +
/// AMX_MR` of a are columns of at; packed as a VNNI panel, then transposed 16 x 16.
fn pack_rows_t<T: PackSource>(
    at: &[T],
    total_rows: usize,
    r0: usize,
    p0: usize,
    kc: usize,
    pairs_pad: usize,
    out: &mut [u32],
) {
    assert_eq!(AMX_MR, NR, "pack_rows_t reuses the weight-panel packer");
    assert!(pairs_pad.is_multiple_of(16) && out.len() == AMX_MR * pairs_pad);
    let mut panel = vec![0u32; pairs_pad * NR];
    pack_nn(at, total_rows, r0, p0, kc, &mut panel);
    // SAFETY: pack_nn checked the features; panel is [pairs_pad][32], out [32][pairs_pad].
    #[cfg(target_arch = "x86_64")]
    return unsafe { vpack::transpose_panel(&panel, pairs_pad, out) };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX512_BF16 is x86_64 only")
}

/// Intel AMX through inline assembly (the tile intrinsics are not stable Rust): tiles 0-3
/// accumulate a 32 x 32 f32 block, 4-5 hold x rows, 6-7 weight pairs.
#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;
    use std::sync::OnceLock;

    /// AMX-BF16 and AMX-TILE in CPUID, and Linux lets this process use the tile data state
    /// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, once per process). Asked by
    /// the level detection only after AVX512_BF16 (the packers' conversions) was found.
    pub(super) fn supported() -> bool {
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            // SAFETY: CPUID leaf 7 exists on every x86_64 CPU that has AVX-512.
            let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
            let (bf16, tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
            bf16 && tile && request_permission()
        })
    }

    /// Whether this CPU and OS run the AMX kernels (a safety check, whatever the cap).
    pub(super) fn available() -> bool {
        crate::isa::detected() == crate::isa::Isa::Amx
    }

    #[cfg(target_os = "linux")]
    fn request_permission() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with integer arguments.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn request_permission() -> bool {
        false
    }

    /// Palette 1, all eight tiles 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64; // bytes per row (little-endian u16)
            c[48 + t] = 16; // rows
            t += 1;
        }
        Config(c)
    };

    /// # Safety
    /// [`available`] must be true.
    pub(super) unsafe fn configure() {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const Config, options(nostack, readonly));
    }

    /// # Safety
    /// Tiles must have been configured on this thread.
    pub(super) unsafe fn release() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// `out [32, 32] (+)= a [32 rows, 2 * pairs] . b^T` with a row-major (`stride_pairs` u32
    /// per row), b as `steps * 16` VNNI rows of 32 pairs and out's rows `ld` f32 apart; with
    /// `load` the product is added to what out holds.
    ///
    /// # Safety
    /// Tiles configured; `a` holds 32 rows of `stride_pairs >= steps * 16` u32, `b` holds
    /// `steps * 16 * 32` u32, `out` 32 rows of 32 f32 at stride `ld`.
    pub(super) unsafe fn micro(
        a: *const u32,
        stride_pairs: usize,
        b: *const u32,
        steps: usize,
        out: *mut f32,
        ld: usize,
        load: bool,
    ) {
        let sa = stride_pairs * 4;
        let so = ld * 4;
        let (o0, o1, o2, o3) = (out, out.add(16), out.add(16 * ld), out.add(16 * ld + 16));
        if load {
            asm!(
                "tileloadd tmm0, [{o0} + {so}*1]",
                "tileloadd tmm1, [{o1} + {so}*1]",
                "tileloadd tmm2, [{o2} + {so}*1]",
                "tileloadd tmm3, [{o3} + {so}*1]",
                o0 = in(reg) o0,
                o1 = in(reg) o1,
                o2 = in(reg) o2,
                o3 = in(reg) o3,
                so = in(reg) so,
                options(nostack, readonly),
            );
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        for s in 0..steps {
            let a0 = a.add(s * 16);
            let a1 = a0.add(16 * stride_pairs);
            let b0 = b.add(s * 16 * 32);
            let b1 = b0.add(16);
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0,
                a1 = in(reg) a1,
                b0 = in(reg) b0,
                b1 = in(reg) b1,
                sa = in(reg) sa,
                sb = in(reg) 128usize,
                options(nostack, readonly),
            );
        }
        asm!(
            "tilestored [{o0} + {so}*1], tmm0",
            "tilestored [{o1} + {so}*1], tmm1",
            "tilestored [{o2} + {so}*1], tmm2",
            "tilestored [{o3} + {so}*1], tmm3",
            o0 = in(reg) o0,
            o1 = in(reg) o1,
            o2 = in(reg) o2,
            o3 = in(reg) o3,
            so = in(reg) so,
            options(nostack),
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod amx {
    pub(super) fn supported() -> bool {
        false
    }
    pub(super) fn available() -> bool {
        false
    }
    pub(super) unsafe fn configure() {}
    pub(super) unsafe fn release() {}
    pub(super) unsafe fn micro(
        _: *const u32,
        _: usize,
        _: *const u32,
        _: usize,
        _: *mut f32,
        _: usize,
        _: bool,
    ) {
        unreachable!("AMX is x86_64 only")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// One `MR x NR` tile over `pairs` packed pairs; stores (or adds to) the first `rows`
    /// rows and `cols` columns at `dst` (row stride `ld`).
    ///
    /// # Safety
    /// AVX-512F/BW/BF16 available; `a` holds `pairs * MR` and `b` `pairs * NR` u32; the
    /// stored region is valid.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn micro(
        a: *const u32,
        b: *const u32,
        pairs: usize,
        dst: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        store: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for q in 0..pairs {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR) as *const _));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16) as *const _));
            let ar = a.add(q * MR);
            for r in 0..MR {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ar.add(r) as i32));
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
            }
        }
        let lane_mask = |c0: usize| -> __mmask16 {
            let valid = cols.saturating_sub(c0).min(16);
            ((1u32 << valid) - 1) as __mmask16
        };
        let masks = [lane_mask(0), lane_mask(16)];
        for (r, row) in acc.iter().enumerate().take(rows) {
            for (h, &v) in row.iter().enumerate() {
                let m = masks[h];
                if m == 0 {
                    continue;
                }
                let p = dst.add(r * ld + h * 16);
                let v = if store {
                    v
                } else {
                    _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, p))
                };
                _mm512_mask_storeu_ps(p, m, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[bf16], m: usize, k: usize, w: &[bf16], n: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k)
                    .map(|p| x[i * k + p].to_f32() as f64 * w[j * k + p].to_f32() as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<bf16> {
        // Small integers and halves: products and sums are exact in f32, so results compare
        // exactly whatever the summation order.
        (0..len)
            .map(|i| {
                bf16::from_f32(
                    (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 13) % 17) as f32
                        * 0.5
                        - 4.0,
                )
            })
            .collect()
    }

    #[test]
    fn matches_naive_on_ragged_shapes_and_accumulates() {
        let kernels: Vec<Kernel> = [
            (Kernel::Amx, amx::available()),
            (Kernel::Avx512, available()),
        ]
        .into_iter()
        .filter_map(|(kn, ok)| ok.then_some(kn))
        .collect();
        // Each kernel needs its CPU feature; the machines this project runs on differ (Intel
        // with AMX, AMD with AVX512_BF16 only), so the test covers what this CPU has and says
        // which ones it ran.
        eprintln!("packed bf16 kernels tested on this CPU: {kernels:?}");
        for kernel in kernels {
            // Shapes cross every edge: rows not a multiple of MR or MC, columns not of NR, odd k,
            // k across several KC blocks.
            for (m, k, n) in [
                (1, 1, 1),
                (12, 2, 32),
                (13, 3, 33),
                (25, 257, 31),
                (600, 515, 70),
                (5, 1030, 97),
                (33, 1100, 65),
            ] {
                let x = values(m * k, 1);
                let w = values(n * k, 7);
                let want = naive(&x, m, k, &w, n);
                let mut y = vec![f32::NAN; m * n];
                gemm_nt_with(kernel, &x, m, k, &w, n, &mut y, false);
                assert_eq!(y, want, "{kernel:?} store m {m} k {k} n {n}");
                let mut y2 = vec![1.0f32; m * n];
                gemm_nt_with(kernel, &x, m, k, &w, n, &mut y2, true);
                let want2: Vec<f32> = want.iter().map(|v| v + 1.0).collect();
                assert_eq!(y2, want2, "{kernel:?} accumulate m {m} k {k} n {n}");
            }
        }
    }

    #[test]
    fn a_weight_packed_once_gives_the_per_call_products() {
        let kernels: Vec<Kernel> = [
            (Kernel::Amx, amx::available()),
            (Kernel::Avx512, available()),
        ]
        .into_iter()
        .filter_map(|(kn, ok)| ok.then_some(kn))
        .collect();
        eprintln!("packed-once weights tested with the kernels of this CPU: {kernels:?}");
        for kernel in kernels {
            // n across NR panels, k across several inner blocks of either kernel, rows from a
            // decoding step's few dozen to more than one row block.
            for (n, k) in [(33, 515), (97, 2100), (64, 256)] {
                let w = values(n * k, 11);
                let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
                let packed = PackedWeight::new(kernel, &w, n, k);
                let packed_f32 = PackedWeight::new(kernel, &wf, n, k);
                assert_eq!(
                    packed.data[..],
                    packed_f32.data[..],
                    "{kernel:?} f32 source packs as bf16"
                );
                assert_eq!(packed.dims(), (n, k));
                for m in [1, 24, 37, 700] {
                    let x = values(m * k, m as u32);
                    let mut per_call = vec![f32::NAN; m * n];
                    gemm_nt_with(kernel, &x, m, k, &w, n, &mut per_call, false);
                    let mut once = vec![f32::NAN; m * n];
                    gemm_nt_packed(&x, m, &packed, &mut once, false);
                    assert_eq!(once, per_call, "{kernel:?} m {m} n {n} k {k}");
                    assert_eq!(once, naive(&x, m, k, &w, n), "{kernel:?} m {m} n {n} k {k}");
                    let mut acc = vec![0.5f32; m * n];
                    gemm_nt_packed(&x, m, &packed, &mut acc, true);
                    assert!(acc.iter().zip(&once).all(|(a, o)| *a == o + 0.5));
                }
            }
        }
    }

    #[test]
    fn nn_and_tn_layouts_match_naive() {
        if !amx::available() {
            eprintln!("AMX not available: the nn / tn products fall back to transposed copies on this CPU");
            return;
        }
        for (m, k, n) in [
            (1, 1, 1),
            (32, 2, 32),
            (33, 3, 65),
            (70, 1025, 31),
            (600, 515, 97),
        ] {
            // a [m, k], b [k, n]; at = a^T [k, m]; naive() multiplies x [m, k] by w [n, k]^T.
            let a = values(m * k, 3);
            let b = values(k * n, 9);
            let at: Vec<bf16> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<bf16> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let want = naive(&a, m, k, &bt, n);
            let mut y = vec![f32::NAN; m * n];
            gemm_nn_amx(&a, m, k, &b, n, &mut y, false);
            assert_eq!(y, want, "nn m {m} k {k} n {n}");
            let mut y = vec![f32::NAN; m * n];
            gemm_tn_amx(&at, m, k, &b, n, &mut y, false);
            assert_eq!(y, want, "tn m {m} k {k} n {n}");
            // f32 sources (values exact in bf16) and accumulation.
            let af: Vec<f32> = at.iter().map(|v| v.to_f32()).collect();
            let bf: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
            let mut y = vec![2.0f32; m * n];
            gemm_tn_amx(&af, m, k, &bf, n, &mut y, true);
            let want2: Vec<f32> = want.iter().map(|v| v + 2.0).collect();
            assert_eq!(y, want2, "tn f32 accumulate m {m} k {k} n {n}");
        }
    }
}
