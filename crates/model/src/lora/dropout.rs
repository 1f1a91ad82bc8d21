//! Dropout on an adapter's input with masks that are a pure function of (seed, element index):
//! a recomputed layer draws the same mask as its first forward, and the thread count or
//! batching of the mask's generation changes nothing.
use anyhow::Result;
use candle_core::Tensor;
use rayon::prelude::*;

/// `x * mask / (1 - p)` with each element kept with probability `1 - p`.
pub fn apply(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let n = x.elem_count();
    let keep = 1.0 / (1.0 - p) as f32;
    // An element is dropped when its 24-bit uniform falls below p.
    let threshold = (p * (1u64 << 24) as f64) as u64;
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c << 14) as u64;
            for (i, m) in chunk.iter_mut().enumerate() {
                let u =
                    super::mix(seed ^ (base + i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 40;
                *m = if u >= threshold { keep } else { 0.0 };
            }
        });
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * mask)?)
}

/// The fraction of zeros in a mask-applied all-ones tensor (for tests).
#[cfg(test)]
fn dropped_fraction(n: usize, p: f64, seed: u64) -> f64 {
    let x = Tensor::ones(n, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let y = apply(&x, p, seed).unwrap().to_vec1::<f32>().unwrap();
    y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_repeat_per_seed_differ_across_seeds_and_keep_the_mean() {
        let x = Tensor::ones(
            (64, 300),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let a = apply(&x, 0.25, 7)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = apply(&x, 0.25, 7)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = apply(&x, 0.25, 8)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        let f = dropped_fraction(100_000, 0.1, 3);
        assert!((f - 0.1).abs() < 0.005, "dropped {f}");
    }
}
