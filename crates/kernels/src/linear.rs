//! Inference matmul `y = x W^T` for weights in the HF `Linear` layout `[n, k]`, with f32 or
//! bf16 weights and f32 activations and accumulators.
//!
//! Why our own: candle's CPU matmul (the `gemm` crate) runs AVX2 micro-kernels and packs the
//! right-hand side on every call, so at the small row counts of decoding it copies each weight
//! matrix before using it once, and it has no fast path for bf16 weights. Here every output
//! element is a dot product of an activation row and a weight row, both contiguous: a tile of
//! 4 activation rows x 4 weight rows (1 x 8 below 4 rows) keeps 16 (8) AVX-512 accumulators, so each weight vector loaded
//! from memory feeds 4 FMAs and the weights stream through exactly once per block of 64
//! activation rows. bf16 weights are widened to f32 in registers (a shift), halving the bytes
//! read, which is what bounds decoding.
// The bf16 kernels run only on x86_64 (no other CPU reports their features); elsewhere
// their entry points compile but are never reached.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables))]
use crate::gemm_bf16::PackSource;
use crate::isa::Isa;
use half::bf16;
use rayon::prelude::*;

/// Weight rows `[n, k]`, row-major.
#[derive(Clone, Copy)]
pub(crate) enum WeightRows<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
}

/// Micro-tile: activation rows x weight rows computed together.
const MR: usize = 4;
const NR: usize = 4;
/// Weight rows per tile when fewer than MR activation rows remain (decoding at batch 1-3),
/// so per-tile overhead is amortised over more weight rows.
const NR_FEW: usize = 8;
/// Output of one tile (sized for the wider of the two shapes).
type TileOut = [[f32; NR_FEW]; MR];
/// Activation rows per block: 64 rows of k <= 4864 f32 stay in L2 while the weights stream.
const MB: usize = 64;
/// Minimum multiply-adds per rayon task, so tiny projections are not split into tasks that
/// cost more to schedule than to run.
const MIN_TASK_WORK: usize = 1 << 17;

/// The tile kernel of the f32 / bf16-weight products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TileKernel {
    /// Scalar code with a fixed summation order: the same bits on every CPU.
    Portable,
    /// AVX2 + FMA tiles (8-lane vectors), for CPUs without AVX-512.
    Avx2,
    /// AVX-512F tiles.
    Avx512,
    /// NEON tiles (aarch64; compiled only there).
    Neon,
}

impl TileKernel {
    /// The fastest kernel level `isa` allows that this CPU runs.
    pub(crate) fn for_level(isa: Isa) -> Self {
        let cpu = crate::isa::detected();
        if cfg!(target_arch = "x86_64") && isa.allows(Isa::Avx512) && cpu.allows(Isa::Avx512) {
            return TileKernel::Avx512;
        }
        if cfg!(target_arch = "x86_64") && isa.allows(Isa::Avx2) && cpu.allows(Isa::Avx2) {
            return TileKernel::Avx2;
        }
        if cfg!(target_arch = "aarch64") && isa.allows(Isa::Neon) && cpu.allows(Isa::Neon) {
            return TileKernel::Neon;
        }
        TileKernel::Portable
    }

    fn path(self) -> &'static crate::isa::Path {
        use crate::isa::path;
        match self {
            TileKernel::Portable => &path::MATMUL_NT_PORTABLE,
            TileKernel::Avx2 => &path::MATMUL_NT_AVX2,
            TileKernel::Avx512 => &path::MATMUL_NT_AVX512,
            TileKernel::Neon => &path::MATMUL_NT_NEON,
        }
    }
}

/// `y[i, j] = sum_p x[i, p] * w[j, p]` for x `[m, k]`, w `[n, k]`, y `[m, n]` (all row-major),
/// with the kernel of level `isa` (capped by what the CPU runs). Under
/// [`Isa::Portable`] every output is [`dot`] of its two rows, whatever the tiling or the
/// thread count, so the result is bit-identical on every machine.
pub(crate) fn matmul_nt_with(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: WeightRows,
    n: usize,
    y: &mut [f32],
) {
    assert_eq!(x.len(), m * k, "matmul_nt: x length");
    match w {
        WeightRows::F32(s) => assert_eq!(s.len(), n * k, "matmul_nt: w length"),
        WeightRows::Bf16(s) => assert_eq!(s.len(), n * k, "matmul_nt: w length"),
    }
    let kernel = TileKernel::for_level(isa);
    kernel.path().hit();
    run_strips(m, k, n, y, false, |i, mr, j, nr, out| {
        tile(kernel, &x[i * k..(i + mr) * k], mr, k, w, j, nr, out)
    });
}

/// Whether the active level runs [`matmul_nt_bf16`] on this CPU.
pub(crate) fn bf16_dot_available() -> bool {
    bf16_dot_allowed(crate::isa::active())
}

/// Whether level `isa` runs [`matmul_nt_bf16_with`] on this CPU.
pub(crate) fn bf16_dot_allowed(isa: Isa) -> bool {
    isa.allows(Isa::Avx512Bf16) && crate::isa::detected().allows(Isa::Avx512Bf16)
}

/// [`matmul_nt`] with both operands rounded to bf16 (f32 or bf16 inputs) and f32
/// accumulation. From [`crate::gemm_bf16::MIN_ROWS`] rows on, the packed kernels (AMX tiles,
/// else outer-product vectors) run, rounding while they pack, so an f32 weight or activation
/// gets no bf16 copy (for a 0.5B model that copy pass was a fifth of a forward); below, the
/// operands are rounded first and AVX512_BF16 dot-product tiles stream the weights once (two
/// bf16 products per f32 lane per instruction).
///
/// # Panics
/// If the CPU lacks AVX512_BF16.
pub(crate) fn matmul_nt_bf16<X: PackSource, W: PackSource>(
    x: &[X],
    m: usize,
    k: usize,
    w: &[W],
    n: usize,
    y: &mut [f32],
) {
    matmul_nt_bf16_with(crate::isa::active(), x, m, k, w, n, y)
}

/// [`matmul_nt_bf16`] at level `isa`: it picks AMX or AVX512_BF16 for the packed kernels.
/// The dot-product tiles need AVX512_BF16 whatever `isa` says (callers check
/// [`bf16_dot_allowed`] first).
pub(crate) fn matmul_nt_bf16_with<X: PackSource, W: PackSource>(
    isa: Isa,
    x: &[X],
    m: usize,
    k: usize,
    w: &[W],
    n: usize,
    y: &mut [f32],
) {
    assert!(
        crate::isa::detected().allows(Isa::Avx512Bf16),
        "matmul_nt_bf16: CPU lacks AVX512_BF16"
    );
    assert_eq!(x.len(), m * k, "matmul_nt_bf16: x length");
    assert_eq!(w.len(), n * k, "matmul_nt_bf16: w length");
    if m >= crate::gemm_bf16::MIN_ROWS {
        if let Some(kernel) = crate::gemm_bf16::best_kernel_for(isa) {
            return crate::gemm_bf16::gemm_nt_with(kernel, x, m, k, w, n, y, false);
        }
    }
    crate::isa::path::MATMUL_NT_BF16DOT.hit();
    let (x, w) = (X::bf16_rows(x), W::bf16_rows(w));
    let (x, w): (&[bf16], &[bf16]) = (&x, &w);
    // The inner dim is cut into blocks of KC so a block of MB activation rows stays in L2
    // while the weight rows stream past it: with the output head's backward (k = vocab) a
    // whole row would not, and each 4-column tile would re-read the rows from memory.
    const KC: usize = 4096;
    let mut p0 = 0;
    loop {
        let kc = KC.min(k - p0);
        #[cfg(target_arch = "x86_64")]
        run_strips(m, kc, n, y, p0 > 0, |i, mr, j, nr, out| {
            let xs = &x[i * k + p0..(i + mr - 1) * k + p0 + kc];
            let ws = &w[j * k + p0..(j + nr - 1) * k + p0 + kc];
            // SAFETY: the features were checked above; the slices cover mr (nr) rows of kc
            // values at stride k.
            unsafe { bf16dot::tile(xs, mr, k, kc, ws, nr, out) }
        });
        p0 += kc;
        if p0 >= k {
            break;
        }
    }
}

/// Splits y into column strips run in parallel; `tile(i, mr, j, nr, out)` computes rows
/// `i..i + mr` x columns `j..j + nr` into `out`, which is stored into y, or added to it when
/// `accumulate` is set.
fn run_strips(
    m: usize,
    k: usize,
    n: usize,
    y: &mut [f32],
    accumulate: bool,
    tile: impl Fn(usize, usize, usize, usize, &mut TileOut) + Sync,
) {
    assert_eq!(y.len(), m * n, "matmul_nt: y length");
    if m == 0 || n == 0 {
        return;
    }
    // Column strips of whole tiles; enough strips (16 per thread) for rayon to rebalance when
    // a thread is slowed down by other work on the machine.
    let threads = rayon::current_num_threads();
    let by_balance = n.div_ceil(threads * 16);
    let by_work = MIN_TASK_WORK.div_ceil(k.max(1) * m.min(MB));
    let cols = by_balance
        .max(by_work)
        .next_multiple_of(NR_FEW)
        .min(n.next_multiple_of(NR_FEW));
    let out = OutPtr(y.as_mut_ptr());
    let strips = n.div_ceil(cols);
    (0..strips).into_par_iter().for_each(|s| {
        let (c0, c1) = (s * cols, ((s + 1) * cols).min(n));
        // SAFETY: strips cover disjoint column ranges of y, and every index written below is
        // < m * n, the length checked above.
        unsafe { strip(m, n, c0, c1, out, accumulate, &tile) }
    });
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (see `run_strips`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Columns `c0..c1` of y for all rows.
unsafe fn strip(
    m: usize,
    n: usize,
    c0: usize,
    c1: usize,
    y: OutPtr,
    accumulate: bool,
    tile: &impl Fn(usize, usize, usize, usize, &mut TileOut),
) {
    let mut tile_out: TileOut = [[0f32; NR_FEW]; MR];
    for mb in (0..m).step_by(MB) {
        let m_end = (mb + MB).min(m);
        let tile_cols = if m_end - mb < MR { NR_FEW } else { NR };
        for j in (c0..c1).step_by(tile_cols) {
            let nr = tile_cols.min(c1 - j);
            for i in (mb..m_end).step_by(MR) {
                let mr = MR.min(m_end - i);
                tile(i, mr, j, nr, &mut tile_out);
                for r in 0..mr {
                    for c in 0..nr {
                        let dst = y.0.add((i + r) * n + j + c);
                        *dst = if accumulate {
                            *dst + tile_out[r][c]
                        } else {
                            tile_out[r][c]
                        };
                    }
                }
            }
        }
    }
}

/// Dot products of `mr` activation rows with weight rows `j..j + nr`.
#[allow(clippy::too_many_arguments)]
fn tile(
    kernel: TileKernel,
    x: &[f32],
    mr: usize,
    k: usize,
    w: WeightRows,
    j: usize,
    nr: usize,
    out: &mut TileOut,
) {
    #[cfg(target_arch = "x86_64")]
    if kernel == TileKernel::Avx512 {
        // SAFETY: `TileKernel::for_level` picks Avx512 only where the CPU has AVX-512F; the
        // slices cover mr rows of x and rows j..j+nr of w.
        unsafe {
            match w {
                WeightRows::F32(s) => avx512::tile_f32(x, mr, k, &s[j * k..(j + nr) * k], nr, out),
                WeightRows::Bf16(s) => {
                    avx512::tile_bf16(x, mr, k, &s[j * k..(j + nr) * k], nr, out)
                }
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if kernel == TileKernel::Avx2 {
        // SAFETY: `TileKernel::for_level` picks Avx2 only where the CPU has AVX2 and FMA; the
        // slices cover mr rows of x and rows j..j+nr of w.
        unsafe {
            match w {
                WeightRows::F32(s) => avx2::tile_f32(x, mr, k, &s[j * k..(j + nr) * k], nr, out),
                WeightRows::Bf16(s) => avx2::tile_bf16(x, mr, k, &s[j * k..(j + nr) * k], nr, out),
            }
        }
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if kernel == TileKernel::Neon {
        // SAFETY: `TileKernel::for_level` picks Neon only where the CPU reports NEON; the
        // slices cover mr rows of x and rows j..j+nr of w.
        unsafe {
            match w {
                WeightRows::F32(s) => neon::tile_f32(x, mr, k, &s[j * k..(j + nr) * k], nr, out),
                WeightRows::Bf16(s) => neon::tile_bf16(x, mr, k, &s[j * k..(j + nr) * k], nr, out),
            }
        }
        return;
    }
    for r in 0..mr {
        let xr = &x[r * k..(r + 1) * k];
        for c in 0..nr {
            let row = (j + c) * k;
            out[r][c] = match w {
                WeightRows::F32(s) => dot(xr, &s[row..row + k], |v| v),
                WeightRows::Bf16(s) => dot(xr, &s[row..row + k], bf16::to_f32),
            };
        }
    }
}

/// Portable dot product with independent partial sums (vectorisable). The summation order
/// is fixed by this code: 16 running sums over the blocks of 16, added left to right, then the
/// tail added left to right; Rust neither reassociates nor fuses float operations, so this
/// gives the same bits on every CPU.
pub(crate) fn dot<T: Copy>(x: &[f32], w: &[T], widen: impl Fn(T) -> f32) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (xc, wc) = (x.chunks_exact(L), w.chunks_exact(L));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (a, b) in xc.zip(wc) {
        for l in 0..L {
            acc[l] += a[l] * widen(b[l]);
        }
    }
    let tail: f32 = xr.iter().zip(wr).map(|(&a, &b)| a * widen(b)).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{TileOut, MR, NR};
    use half::bf16;
    use std::arch::x86_64::*;

    /// Defines a tile kernel for one weight element type: `$load(ptr)` / `$load_mask(mask,
    /// ptr)` give 16 weights as f32.
    macro_rules! tile_kernel {
        ($name:ident, $wty:ty, $load:ident, $load_mask:ident) => {
            /// # Safety
            /// AVX-512F must be available; `x` holds `mr` rows of `k`, `w` holds `nr` rows of `k`.
            #[target_feature(enable = "avx512f")]
            pub(super) unsafe fn $name(
                x: &[f32],
                mr: usize,
                k: usize,
                w: &[$wty],
                nr: usize,
                out: &mut TileOut,
            ) {
                // Dispatch to a fully unrolled kernel for the common full tile.
                if mr == MR && nr == NR {
                    kernel::<MR, NR>(x.as_ptr(), k, w.as_ptr(), out);
                } else {
                    kernel_dyn(x.as_ptr(), mr, k, w.as_ptr(), nr, out);
                }

                #[target_feature(enable = "avx512f")]
                #[inline]
                unsafe fn kernel<const R: usize, const C: usize>(
                    x: *const f32,
                    k: usize,
                    w: *const $wty,
                    out: &mut TileOut,
                ) {
                    let mut acc = [[_mm512_setzero_ps(); C]; R];
                    let mut p = 0;
                    while p + 16 <= k {
                        let mut wv = [_mm512_setzero_ps(); C];
                        for c in 0..C {
                            wv[c] = $load(w.add(c * k + p));
                        }
                        for r in 0..R {
                            let xv = _mm512_loadu_ps(x.add(r * k + p));
                            for c in 0..C {
                                acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                            }
                        }
                        p += 16;
                    }
                    if p < k {
                        let mask: __mmask16 = ((1u32 << (k - p)) - 1) as u16;
                        let mut wv = [_mm512_setzero_ps(); C];
                        for c in 0..C {
                            wv[c] = $load_mask(mask, w.add(c * k + p));
                        }
                        for r in 0..R {
                            let xv = _mm512_maskz_loadu_ps(mask, x.add(r * k + p));
                            for c in 0..C {
                                acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                            }
                        }
                    }
                    for r in 0..R {
                        for c in 0..C {
                            out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
                        }
                    }
                }

                /// Edge tiles (and decoding below 4 rows): each weight row is read as one
                /// sequential stream (which the hardware prefetcher follows best) with 4
                /// independent accumulators, against each activation row in turn (the weight
                /// row is then in L1).
                #[target_feature(enable = "avx512f")]
                #[inline]
                unsafe fn kernel_dyn(
                    x: *const f32,
                    mr: usize,
                    k: usize,
                    w: *const $wty,
                    nr: usize,
                    out: &mut TileOut,
                ) {
                    for c in 0..nr {
                        let wr = w.add(c * k);
                        for r in 0..mr {
                            let xr = x.add(r * k);
                            let mut acc = [_mm512_setzero_ps(); 4];
                            let mut p = 0;
                            while p + 64 <= k {
                                for u in 0..4 {
                                    let o = p + 16 * u;
                                    acc[u] = _mm512_fmadd_ps(
                                        _mm512_loadu_ps(xr.add(o)),
                                        $load(wr.add(o)),
                                        acc[u],
                                    );
                                }
                                p += 64;
                            }
                            while p + 16 <= k {
                                acc[0] = _mm512_fmadd_ps(
                                    _mm512_loadu_ps(xr.add(p)),
                                    $load(wr.add(p)),
                                    acc[0],
                                );
                                p += 16;
                            }
                            if p < k {
                                let mask: __mmask16 = ((1u32 << (k - p)) - 1) as u16;
                                acc[1] = _mm512_fmadd_ps(
                                    _mm512_maskz_loadu_ps(mask, xr.add(p)),
                                    $load_mask(mask, wr.add(p)),
                                    acc[1],
                                );
                            }
                            let sum = _mm512_add_ps(
                                _mm512_add_ps(acc[0], acc[1]),
                                _mm512_add_ps(acc[2], acc[3]),
                            );
                            out[r][c] = _mm512_reduce_add_ps(sum);
                        }
                    }
                }
            }
        };
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_f32(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_f32_mask(m: __mmask16, p: *const f32) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }

    /// bf16 is the top half of an f32: zero-extend to 32 bits and shift left by 16.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_bf16(p: *const bf16) -> __m512 {
        let h = _mm256_loadu_si256(p as *const __m256i);
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }

    /// Tail of fewer than 16 bf16 values: via a zeroed buffer (a masked 16-bit load would
    /// need AVX-512BW).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_bf16_mask(m: __mmask16, p: *const bf16) -> __m512 {
        let mut buf = [bf16::ZERO; 16];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), m.count_ones() as usize);
        load_bf16(buf.as_ptr())
    }

    tile_kernel!(tile_f32, f32, load_f32, load_f32_mask);
    tile_kernel!(tile_bf16, bf16, load_bf16, load_bf16_mask);
}

/// AVX2 + FMA tiles: the shapes of the AVX-512 ones on 8-lane vectors. x86 has 16 vector
/// registers here (32 with AVX-512), so a full 4 x 4 tile runs as two 4 x 2 halves (8
/// accumulators, 2 weight vectors, 1 activation vector): each weight row is still read once,
/// the 4 activation rows twice (from L1/L2, where the row block lives).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{TileOut, MR, NR};
    use half::bf16;
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// Lane mask selecting the first `n < 8` lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn first_lanes(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_f32_tail(p: *const f32, n: usize) -> __m256 {
        _mm256_maskload_ps(p, first_lanes(n))
    }

    /// bf16 is the top half of an f32: zero-extend to 32 bits and shift left by 16.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_bf16(p: *const bf16) -> __m256 {
        let h = _mm_loadu_si128(p as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }

    /// Fewer than 8 bf16 values, through a zeroed buffer (AVX2 has no 16-bit masked load).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_bf16_tail(p: *const bf16, n: usize) -> __m256 {
        let mut buf = [bf16::ZERO; 8];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        load_bf16(buf.as_ptr())
    }

    /// Defines a tile kernel for one weight element type: `$load(ptr)` gives 8 weights as
    /// f32, `$load_tail(ptr, n)` the first `n < 8` (the rest zero).
    macro_rules! tile_kernel {
        ($name:ident, $wty:ty, $load:ident, $load_tail:ident) => {
            /// # Safety
            /// AVX2 and FMA must be available; `x` holds `mr` rows of `k`, `w` `nr` rows of `k`.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $name(
                x: &[f32],
                mr: usize,
                k: usize,
                w: &[$wty],
                nr: usize,
                out: &mut TileOut,
            ) {
                if mr == MR && nr == NR {
                    let (x, w) = (x.as_ptr(), w.as_ptr());
                    kernel::<MR, 2>(x, k, w, out, 0);
                    kernel::<MR, 2>(x, k, w.add(2 * k), out, 2);
                } else {
                    kernel_dyn(x.as_ptr(), mr, k, w.as_ptr(), nr, out);
                }

                /// Columns `c0..c0 + C` of the tile from weight rows at `w`.
                #[target_feature(enable = "avx2,fma")]
                #[inline]
                unsafe fn kernel<const R: usize, const C: usize>(
                    x: *const f32,
                    k: usize,
                    w: *const $wty,
                    out: &mut TileOut,
                    c0: usize,
                ) {
                    let mut acc = [[_mm256_setzero_ps(); C]; R];
                    let mut p = 0;
                    while p + 8 <= k {
                        let mut wv = [_mm256_setzero_ps(); C];
                        for c in 0..C {
                            wv[c] = $load(w.add(c * k + p));
                        }
                        for r in 0..R {
                            let xv = _mm256_loadu_ps(x.add(r * k + p));
                            for c in 0..C {
                                acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
                            }
                        }
                        p += 8;
                    }
                    if p < k {
                        let mut wv = [_mm256_setzero_ps(); C];
                        for c in 0..C {
                            wv[c] = $load_tail(w.add(c * k + p), k - p);
                        }
                        for r in 0..R {
                            let xv = load_f32_tail(x.add(r * k + p), k - p);
                            for c in 0..C {
                                acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
                            }
                        }
                    }
                    for r in 0..R {
                        for c in 0..C {
                            out[r][c0 + c] = hsum(acc[r][c]);
                        }
                    }
                }

                /// Edge tiles (and decoding below 4 rows): each weight row is read as one
                /// sequential stream with 4 independent accumulators, against each
                /// activation row in turn (the weight row is then in L1).
                #[target_feature(enable = "avx2,fma")]
                #[inline]
                unsafe fn kernel_dyn(
                    x: *const f32,
                    mr: usize,
                    k: usize,
                    w: *const $wty,
                    nr: usize,
                    out: &mut TileOut,
                ) {
                    for c in 0..nr {
                        let wr = w.add(c * k);
                        for r in 0..mr {
                            let xr = x.add(r * k);
                            let mut acc = [_mm256_setzero_ps(); 4];
                            let mut p = 0;
                            while p + 32 <= k {
                                for u in 0..4 {
                                    let o = p + 8 * u;
                                    acc[u] = _mm256_fmadd_ps(
                                        _mm256_loadu_ps(xr.add(o)),
                                        $load(wr.add(o)),
                                        acc[u],
                                    );
                                }
                                p += 32;
                            }
                            while p + 8 <= k {
                                acc[0] = _mm256_fmadd_ps(
                                    _mm256_loadu_ps(xr.add(p)),
                                    $load(wr.add(p)),
                                    acc[0],
                                );
                                p += 8;
                            }
                            if p < k {
                                acc[1] = _mm256_fmadd_ps(
                                    load_f32_tail(xr.add(p), k - p),
                                    $load_tail(wr.add(p), k - p),
                                    acc[1],
                                );
                            }
                            let sum = _mm256_add_ps(
                                _mm256_add_ps(acc[0], acc[1]),
                                _mm256_add_ps(acc[2], acc[3]),
                            );
                            out[r][c] = hsum(sum);
                        }
                    }
                }
            }
        };
    }

    tile_kernel!(tile_f32, f32, load_f32, load_f32_tail);
    tile_kernel!(tile_bf16, bf16, load_bf16, load_bf16_tail);
}

/// NEON tiles: the AVX2 tiles' shape with 4-lane vectors (16 accumulators of the 32 vector
/// registers for a 4 x 4 tile). No aarch64 machine was at hand when they were written: they
/// are compiled for aarch64 (`cargo check --target aarch64-unknown-linux-gnu`) but have not
/// run; `tests/isa_paths.rs` checks them against the naive product on such a machine.
#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{TileOut, MR, NR};
    use half::bf16;
    use std::arch::aarch64::*;

    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> float32x4_t {
        vld1q_f32(p)
    }

    /// bf16 is the top half of an f32: widen to 32 bits and shift left by 16.
    #[inline(always)]
    unsafe fn load_bf16(p: *const bf16) -> float32x4_t {
        vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p as *const u16)))
    }

    fn widen_f32(v: f32) -> f32 {
        v
    }

    fn widen_bf16(v: bf16) -> f32 {
        v.to_f32()
    }

    /// Defines a tile kernel for one weight element type: `$load(ptr)` gives 4 weights as
    /// f32, `$widen` one.
    macro_rules! tile_kernel {
        ($name:ident, $wty:ty, $load:ident, $widen:ident) => {
            /// # Safety
            /// NEON must be available; `x` holds `mr` rows of `k`, `w` `nr` rows of `k`.
            #[target_feature(enable = "neon")]
            pub(super) unsafe fn $name(
                x: &[f32],
                mr: usize,
                k: usize,
                w: &[$wty],
                nr: usize,
                out: &mut TileOut,
            ) {
                let (xp, wp) = (x.as_ptr(), w.as_ptr());
                // Inner values past the last whole vector, added one by one.
                let tail = |r: usize, c: usize, from: usize| -> f32 {
                    (from..k).map(|q| x[r * k + q] * $widen(w[c * k + q])).sum()
                };
                if mr == MR && nr == NR {
                    let mut acc = [[vdupq_n_f32(0.0); NR]; MR];
                    let body = k - k % 4;
                    let mut p = 0;
                    while p < body {
                        let mut wv = [vdupq_n_f32(0.0); NR];
                        for (c, v) in wv.iter_mut().enumerate() {
                            *v = $load(wp.add(c * k + p));
                        }
                        for (r, row) in acc.iter_mut().enumerate() {
                            let xv = vld1q_f32(xp.add(r * k + p));
                            for (a, &wc) in row.iter_mut().zip(&wv) {
                                *a = vfmaq_f32(*a, xv, wc);
                            }
                        }
                        p += 4;
                    }
                    for (r, row) in acc.iter().enumerate() {
                        for (c, &a) in row.iter().enumerate() {
                            out[r][c] = vaddvq_f32(a) + tail(r, c, body);
                        }
                    }
                    return;
                }
                // Edge tiles (and decoding below 4 rows): each weight row streamed once per
                // activation row with 4 independent accumulators.
                for c in 0..nr {
                    let wr = wp.add(c * k);
                    for r in 0..mr {
                        let xr = xp.add(r * k);
                        let mut acc = [vdupq_n_f32(0.0); 4];
                        let mut p = 0;
                        while p + 16 <= k {
                            for (u, a) in acc.iter_mut().enumerate() {
                                let o = p + 4 * u;
                                *a = vfmaq_f32(*a, vld1q_f32(xr.add(o)), $load(wr.add(o)));
                            }
                            p += 16;
                        }
                        while p + 4 <= k {
                            acc[0] = vfmaq_f32(acc[0], vld1q_f32(xr.add(p)), $load(wr.add(p)));
                            p += 4;
                        }
                        let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
                        out[r][c] = vaddvq_f32(sum) + tail(r, c, p);
                    }
                }
            }
        };
    }

    tile_kernel!(tile_f32, f32, load_f32, widen_f32);
    tile_kernel!(tile_bf16, bf16, load_bf16, widen_bf16);
}

#[cfg(target_arch = "x86_64")]
mod bf16dot {
    use super::{TileOut, MR, NR, NR_FEW};
    use half::bf16;
    use std::arch::x86_64::*;

    /// 32 bf16 values (the last `k - p < 32` zero-filled when `tail` is set).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn load(p: *const bf16, mask: __mmask32) -> __m512bh {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(mask, p as *const i16))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn kernel<const R: usize, const C: usize>(
        x: *const bf16,
        stride: usize,
        len: usize,
        w: *const bf16,
        out: &mut TileOut,
    ) {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut p = 0;
        while p < len {
            let mask: __mmask32 = if len - p >= 32 {
                u32::MAX
            } else {
                (1u32 << (len - p)) - 1
            };
            let mut wv = [std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()); C];
            for c in 0..C {
                wv[c] = load(w.add(c * stride + p), mask);
            }
            for r in 0..R {
                let xv = load(x.add(r * stride + p), mask);
                for c in 0..C {
                    acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
                }
            }
            p += 32;
        }
        for r in 0..R {
            for c in 0..C {
                out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX512_BF16; `x` holds `mr` rows and `w` `nr` rows of `len` values, rows
    /// `stride` apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn tile(
        x: &[bf16],
        mr: usize,
        stride: usize,
        len: usize,
        w: &[bf16],
        nr: usize,
        out: &mut TileOut,
    ) {
        debug_assert!(x.len() >= (mr - 1) * stride + len && w.len() >= (nr - 1) * stride + len);
        if mr == MR && nr == NR {
            return kernel::<MR, NR>(x.as_ptr(), stride, len, w.as_ptr(), out);
        }
        debug_assert!(nr <= NR_FEW);
        for r in 0..mr {
            let mut one: TileOut = [[0f32; NR_FEW]; MR];
            let xr = x.as_ptr().add(r * stride);
            let wp = w.as_ptr();
            match nr {
                1 => kernel::<1, 1>(xr, stride, len, wp, &mut one),
                2 => kernel::<1, 2>(xr, stride, len, wp, &mut one),
                3 => kernel::<1, 3>(xr, stride, len, wp, &mut one),
                4 => kernel::<1, 4>(xr, stride, len, wp, &mut one),
                5 => kernel::<1, 5>(xr, stride, len, wp, &mut one),
                6 => kernel::<1, 6>(xr, stride, len, wp, &mut one),
                7 => kernel::<1, 7>(xr, stride, len, wp, &mut one),
                _ => kernel::<1, 8>(xr, stride, len, wp, &mut one),
            }
            out[r][..nr].copy_from_slice(&one[0][..nr]);
        }
    }
}
