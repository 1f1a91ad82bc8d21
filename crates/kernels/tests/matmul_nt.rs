//! `matmul_nt_inference` (our weight-streaming x W^T) against candle's matmul: values on
//! shapes that hit full tiles, edge tiles, k tails and multi-block row counts, with f32 and
//! bf16 weights; and its refusal of inputs that track gradients (it has no backward).

mod common;

use candle_core::{DType, Tensor};
use common::*;
use oneshot_kernels as k;

/// candle's x W^T in f32, with the weights first rounded to `w_dtype` (so a bf16 check
/// compares the same weight values).
fn reference(x: &Tensor, w: &Tensor, w_dtype: DType) -> Tensor {
    let w = w.to_dtype(w_dtype).unwrap().to_dtype(DType::F32).unwrap();
    let k = w.dim(1).unwrap();
    let x2 = x.to_dtype(DType::F32).unwrap().reshape(((), k)).unwrap();
    let mut dims = x.dims().to_vec();
    *dims.last_mut().unwrap() = w.dim(0).unwrap();
    x2.matmul(&w.t().unwrap()).unwrap().reshape(dims).unwrap()
}

#[test]
fn matches_candle_matmul_f32_and_bf16_weights() {
    let mut r = rng(7);
    // (rows, n, k): decode rows 1..8, tiles with edges in both directions, k not a multiple of
    // 16, k shorter than one vector, and > 64 rows (several row blocks).
    let shapes = [
        (1, 64, 64),
        (1, 130, 896),
        (3, 5, 17),
        (4, 4, 16),
        (5, 9, 7),
        (8, 33, 100),
        (67, 70, 48),
        (130, 12, 320),
    ];
    for &(m, n, kk) in &shapes {
        let x = uniform(&mut r, &[m, kk], 1.0);
        let w = uniform(&mut r, &[n, kk], 1.0);
        for wd in [DType::F32, DType::BF16] {
            let got = k::matmul_nt_inference(&x, &w.to_dtype(wd).unwrap()).unwrap();
            assert_eq!(got.dims(), [m, n]);
            assert_eq!(got.dtype(), DType::F32);
            let want = reference(&x, &w, wd);
            assert_close(&got, &want, 1e-5, &format!("m {m} n {n} k {kk} w {wd:?}"));
        }
    }
}

/// bf16 activations x bf16 weights (the AVX512_BF16 dot-product path where the CPU has it):
/// products of the same bf16 values accumulated in f32, so the only difference from the f32
/// reference is the final rounding to bf16 and the summation order.
#[test]
fn bf16_activations_and_weights_match_f32_matmul_of_the_same_values() {
    let mut r = rng(11);
    let shapes = [
        (1, 64, 64),
        (1, 9, 896),
        (3, 5, 17),
        (4, 4, 32),
        (4, 8, 40),
        (6, 13, 33),
        (67, 70, 96),
    ];
    for &(m, n, kk) in &shapes {
        let x = uniform(&mut r, &[m, kk], 1.0)
            .to_dtype(DType::BF16)
            .unwrap();
        let w = uniform(&mut r, &[n, kk], 1.0)
            .to_dtype(DType::BF16)
            .unwrap();
        let got = k::matmul_nt_inference(&x, &w).unwrap();
        assert_eq!(got.dtype(), DType::BF16);
        let want = reference(&x, &w, DType::BF16);
        // bf16 output: 8 bits of mantissa.
        assert_close(
            &got.to_dtype(DType::F32).unwrap(),
            &want,
            8e-3,
            &format!("bf16 m {m} n {n} k {kk}"),
        );
    }
}

#[test]
fn keeps_leading_dims_and_activation_dtype() {
    let mut r = rng(8);
    let x = uniform(&mut r, &[2, 3, 40], 1.0)
        .to_dtype(DType::BF16)
        .unwrap();
    let w = uniform(&mut r, &[6, 40], 1.0)
        .to_dtype(DType::BF16)
        .unwrap();
    let got = k::matmul_nt_inference(&x, &w).unwrap();
    assert_eq!(got.dims(), [2, 3, 6]);
    assert_eq!(got.dtype(), DType::BF16);
    let want = reference(&x, &w, DType::BF16)
        .to_dtype(DType::BF16)
        .unwrap();
    assert_close(
        &got.to_dtype(DType::F32).unwrap(),
        &want.to_dtype(DType::F32).unwrap(),
        1e-2,
        "bf16 activations",
    );
}

#[test]
fn non_contiguous_weights_are_read_correctly() {
    let mut r = rng(9);
    let x = uniform(&mut r, &[5, 24], 1.0);
    let wt = uniform(&mut r, &[24, 11], 1.0);
    let w = wt.t().unwrap(); // [11, 24], strided
    let got = k::matmul_nt_inference(&x, &w).unwrap();
    assert_close(
        &got,
        &reference(&x, &w.contiguous().unwrap(), DType::F32),
        1e-5,
        "strided w",
    );
}

#[test]
fn refuses_tracked_inputs_and_bad_shapes() {
    let mut r = rng(10);
    let x = var(&mut r, &[2, 8], 1.0);
    let w = uniform(&mut r, &[3, 8], 1.0);
    let err = k::matmul_nt_inference(x.as_tensor(), &w)
        .unwrap_err()
        .to_string();
    assert!(err.contains("track gradients"), "{err}");
    let x = uniform(&mut r, &[2, 9], 1.0);
    let err = k::matmul_nt_inference(&x, &w).unwrap_err().to_string();
    assert!(err.contains("inner dim"), "{err}");
}
