//! Building blocks for vectorisable inner loops.
//!
//! Rust does not reassociate float reductions, so loops written naively stay scalar. The helpers
//! here keep `LANES` independent accumulators (which LLVM maps onto SIMD registers) and provide a
//! branch-free `exp` that vectorises, unlike libm's. [`multiversion!`] compiles a kernel twice,
//! once for the baseline target and once with AVX2+FMA, and picks at run time.

/// Number of independent accumulators in reductions: two SSE or one AVX register of f32.
pub(crate) const LANES: usize = 8;

/// Whether the AVX2 + FMA builds of [`multiversion!`] kernels run: the active level of
/// [`crate::isa`] allows them (the level never exceeds what the CPU has). Records the path.
/// Public for [`multiversion!`] expanded in other crates.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn use_avx2_fma() -> bool {
    let yes = crate::isa::active().allows(crate::isa::Isa::Avx2);
    if yes {
        crate::isa::path::SIMD_AVX2.hit();
    } else {
        crate::isa::path::SIMD_PORTABLE.hit();
    }
    yes
}

/// Defines `fn name(..)` that runs its body compiled for AVX2+FMA when the active level of
/// [`crate::isa`] allows it, and the portable build otherwise. The body must be safe code;
/// generics take `T: Bound` form. Both builds compute the same bits: the body is plain Rust,
/// which the compiler neither reassociates nor contracts into FMAs, so the AVX2 build only
/// runs the same operations on wider registers. Exported for the model's sampler and paged
/// attention; functions the body calls must be `#[inline(always)]` to be compiled for AVX2, and
/// loops must not be handed to generic functions the compiler keeps out of line (an iterator
/// chain ending in `collect` runs inside `Vec::from_iter`, built without AVX2).
#[macro_export]
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $(<$($gen:ident : $bound:path),*>)? ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name $(<$($gen: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable $(<$($gen: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2 $(<$($gen: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    portable $(::<$($gen),*>)? ($($arg),*)
                }
                if $crate::simd::use_avx2_fma() {
                    // SAFETY: the CPU was just checked to support every enabled feature.
                    return unsafe { avx2 $(::<$($gen),*>)? ($($arg),*) };
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            $crate::isa::path::SIMD_PORTABLE.hit();
            portable $(::<$($gen),*>)? ($($arg),*)
        }
    };
}
pub(crate) use crate::multiversion;

/// exp(x) for f32 without branches or libm calls, so loops calling it vectorise.
///
/// Range reduction x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r (the classic
/// Cephes `expf` coefficients, ~1 ulp), and 2^n built directly in the exponent bits. Inputs are
/// clamped to [-87.3, 88.0] so 2^n stays a normal float: below the range the result is
/// ~1e-38 instead of 0 (irrelevant next to any softmax normaliser >= 1); NaN propagates.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer and leaves that integer in the low mantissa bits.
    const ROUND_MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.0);
    let t = xc * LOG2E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r2 + r + 1.0;
    let scale = f32::from_bits(((n_int + 127) << 23) as u32);
    let y = er * scale;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// ln(x) for f32 from IEEE arithmetic only (libm's `logf` has CPU-specific builds, e.g. an FMA
/// variant picked at load time, which may differ in the last bit), so the result is the same
/// on every machine. Computed in f64: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m =
/// 2 atanh(s) with s = (m - 1) / (m + 1), |s| <= 0.172, summed to s^15 (truncation < 1e-13),
/// then rounded once to f32. Zero, negative, infinite and NaN inputs give libm's exact special
/// values. Meant for once-per-row normalisers, not for inner loops.
#[inline]
pub(crate) fn ln(x: f32) -> f32 {
    if !(x > 0.0 && x.is_finite()) {
        return x.ln();
    }
    let bits = (x as f64).to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 15.0;
    for c in [13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p * s2 + 1.0 / c;
    }
    (e as f64 * std::f64::consts::LN_2 + 2.0 * s * p) as f32
}

/// Sum of the lanes of an accumulator array.
#[inline(always)]
pub(crate) fn reduce_sum(acc: [f32; LANES]) -> f32 {
    // Pairwise, for a little extra accuracy.
    let a = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (a[0] + a[2]) + (a[1] + a[3])
}

/// Maximum of a slice (NEG_INFINITY when empty). NaN entries are propagated.
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut has_nan = false;
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            // `>` keeps the comparison a plain vector max; NaNs are tracked separately.
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
            has_nan |= c[i].is_nan();
        }
    }
    let mut m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in tail {
        m = if v > m { v } else { m };
        has_nan |= v.is_nan();
    }
    if has_nan {
        f32::NAN
    } else {
        m
    }
}

/// Sum of a slice with `LANES` accumulators.
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mut s = reduce_sum(acc);
    for &v in tail {
        s += v;
    }
    s
}

/// Dot product with `LANES` accumulators.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = reduce_sum(acc);
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.01731;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e9) < 1e-37);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(1e9).is_finite());
    }

    #[test]
    fn ln_is_within_one_ulp_of_the_f64_logarithm() {
        let mut worst = 0f64;
        // Every 9973rd positive finite f32, subnormals included.
        for b in (1..0x7f80_0000u32).step_by(9973) {
            let x = f32::from_bits(b);
            let want = (x as f64).ln();
            let near = (want as f32).abs();
            let ulp = (f32::from_bits(near.to_bits() + 1) - near) as f64;
            worst = worst.max((ln(x) as f64 - want).abs() / ulp);
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f32::NAN).is_nan());
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn reductions_match_naive_sums() {
        let xs: Vec<f32> = (0..1037)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
            .collect();
        let naive: f64 = xs.iter().map(|&v| v as f64).sum();
        assert!((sum(&xs) as f64 - naive).abs() < 1e-3);
        let naive_dot: f64 = xs.iter().map(|&v| (v as f64) * (v as f64)).sum();
        assert!((dot(&xs, &xs) as f64 - naive_dot).abs() / naive_dot < 1e-6);
        assert_eq!(max(&xs), 5.0);
        assert_eq!(
            max(&xs[..3]),
            xs[..3].iter().copied().fold(f32::MIN, f32::max)
        );
        let mut with_nan = xs.clone();
        with_nan[500] = f32::NAN;
        assert!(max(&with_nan).is_nan());
    }
}
