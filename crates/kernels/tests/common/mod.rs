//! Shared helpers for the kernel tests: seeded random tensors and tolerance checks.
#![allow(dead_code)]

use candle_core::{Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Values uniform in [-scale, scale).
pub fn uniform(rng: &mut ChaCha8Rng, dims: &[usize], scale: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

pub fn var(rng: &mut ChaCha8Rng, dims: &[usize], scale: f32) -> Var {
    Var::from_tensor(&uniform(rng, dims, scale)).unwrap()
}

/// A variable of shape `dims` presented through a transposed (non-contiguous) view: the
/// variable is stored with the last two dims swapped. Returns (variable, view).
pub fn transposed_var(rng: &mut ChaCha8Rng, dims: &[usize], scale: f32) -> (Var, Tensor) {
    let r = dims.len();
    let mut stored = dims.to_vec();
    stored.swap(r - 2, r - 1);
    let v = var(rng, &stored, scale);
    let view = v.as_tensor().transpose(r - 2, r - 1).unwrap();
    assert!(!view.is_contiguous() || dims[r - 1] == 1 || dims[r - 2] == 1);
    (v, view)
}

pub fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Every element within `rtol` of the reference, relative to max(|ref|, 10% of the largest
/// |ref| in the tensor): elements near zero are judged on the tensor's scale, since both sides
/// carry rounding errors of that scale (e.g. a gradient dominated by a few target entries).
pub fn assert_close(got: &Tensor, want: &Tensor, rtol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (flat(got), flat(want));
    let floor = 0.1 * w.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let tol = rtol * b.abs().max(floor);
        assert!(
            (a - b).abs() <= tol,
            "{what}: element {i}: got {a}, want {b} (|diff| {} > tol {tol})",
            (a - b).abs()
        );
    }
}

/// Scalar loss `sum(out * probe)` with a fixed random probe, so the upstream gradient is
/// not uniform.
pub fn probe_loss(out: &Tensor, seed: u64) -> Result<Tensor> {
    let probe = uniform(&mut rng(seed), out.dims(), 1.0)
        .to_dtype(out.dtype())?
        .to_device(out.device())?;
    (out * probe)?.sum_all()
}

pub fn max_abs(t: &Tensor) -> f32 {
    flat(t).iter().fold(0f32, |m, v| m.max(v.abs()))
}
