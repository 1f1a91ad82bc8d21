//! `exp` and `ln` from plain IEEE arithmetic (no libm call, no fused multiply-add), so sampling
//! and the shared-prefix attention give the same bits on every CPU: libm implementations may
//! round differently, and the compiler never contracts or reassociates these operations.

/// exp(x) in f32, within a few ulp of the exact value for x in [-87.3, 88.7]; 0 below (so
/// -inf logits get no mass), x above is clamped to 88.7.
///
/// Every step is an f32 operation or a select, with no float-to-int conversion (Rust's `as`
/// saturates, which LLVM does not vectorise), so loops over logits compile to SIMD code.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let below = x < -87.3;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k * LN2_HI is exact for the k that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to an integer, which then sits in
    // the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    // k = floor(x log2 e + 1/2): the nearest integer n of v, less one where n rounded up.
    let v = x * LOG2E + 0.5;
    let n = (v + MAGIC) - MAGIC;
    let k = if n > v { n - 1.0 } else { n };
    let r = x - k * LN2_HI - k * LN2_LO;
    // Minimax polynomial of exp on [-ln2/2, ln2/2] (the Cephes expf coefficients).
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    // 2^k through the exponent bits; k is in [-126, 128] after the clamp, and 2^128 (not an
    // f32) is applied as 2^127 * 2.
    let ki = ((k + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let over = ki > 127;
    let ki = if over { 127 } else { ki };
    let twice = if over { 2.0 } else { 1.0 };
    let v = y * f32::from_bits(((ki + 127) as u32) << 23) * twice;
    if below {
        0.0
    } else {
        v
    }
}

/// ln(x) in f64 for finite x > 0 (ln 0 = -inf; NaN and negative inputs give NaN).
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m 2^e with m in [sqrt(1/2), sqrt(2)): normalise subnormals first.
    let (mut bits, mut e) = (x.to_bits(), 0i64);
    if bits >> 52 == 0 {
        bits = (x * 2f64.powi(54)).to_bits();
        e -= 54;
    }
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172: the odd series to s^21 is exact
    // to f64 rounding.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut acc = 0.0;
    for k in (0..11).rev() {
        acc = acc * s2 + 1.0 / (2 * k + 1) as f64;
    }
    2.0 * s * acc + e as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same polynomial with k from the library floor and a saturating conversion: the
    /// obvious scalar form, which [`exp`] restates without conversions so it vectorises.
    fn exp_by_library_floor(x: f32) -> f32 {
        let below = x < -87.3;
        let x = x.clamp(-87.3, 88.7);
        let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
        let r = x - k * 0.693_359_4 - k * -2.121_944_4e-4;
        let p = 1.987_569_1e-4_f32;
        let p = p * r + 1.398_199_9e-3;
        let p = p * r + 8.333_452e-3;
        let p = p * r + 4.166_579_6e-2;
        let p = p * r + 1.666_666_5e-1;
        let p = p * r + 0.5;
        let y = p * (r * r) + r + 1.0;
        let ki = k as i32;
        let (ki, twice) = if ki > 127 { (127, 2.0) } else { (ki, 1.0) };
        let v = y * f32::from_bits(((ki + 127) as u32) << 23) * twice;
        if below {
            0.0
        } else {
            v
        }
    }

    #[test]
    fn exp_has_the_bits_of_the_library_floor_form() {
        let same = |x: f32| {
            let (got, want) = (exp(x), exp_by_library_floor(x));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "exp({x:e}) = {got:e}, library-floor form {want:e}"
            );
        };
        // Every 997th f32 of [-90, 90].
        let top = 90.0f32.to_bits();
        for bits in (0..=top).step_by(997) {
            same(f32::from_bits(bits));
            same(-f32::from_bits(bits));
        }
        // 256 neighbours of each point where k steps (x log2 e + 1/2 an integer), and of the
        // clamp bounds.
        let mut edges: Vec<f32> = (-127..=129)
            .map(|k| (k as f32 - 0.5) * std::f32::consts::LN_2)
            .collect();
        edges.extend([-87.3f32, 88.7]);
        for e in edges {
            for d in 0..256u32 {
                same(f32::from_bits(e.to_bits().wrapping_add(d)));
                same(f32::from_bits(e.to_bits().wrapping_sub(d)));
            }
        }
        for x in [
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
        ] {
            same(x);
        }
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_the_f64_exponential() {
        let mut worst = 0.0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 0.000_37;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 4.0 * f32::EPSILON as f64, "relative error {worst}");
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(88.5).is_finite() && exp(88.5) > 2.7e38);
    }

    #[test]
    fn ln_matches_the_f64_logarithm() {
        for &x in &[
            1e-300, 3e-310, 0.1, 0.5, 0.99, 1.0, 1.5, 2.0, 7.25, 151_936.0, 1e300,
        ] {
            let (got, want) = (ln(x), x.ln());
            assert!(
                (got - want).abs() <= 4.0 * f64::EPSILON * want.abs().max(1.0),
                "ln({x}) = {got}, want {want}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
    }
}
