//! Every level of the instruction-set switch in one process: `matmul_nt_inference_at` forced
//! to each level this CPU runs, against a naive f64 product, with f32 and bf16 weights and
//! activations, at decoding and prefill row counts. Levels the CPU lacks are reported as
//! skipped; the ones it has are still checked.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use oneshot_kernels as k;
use oneshot_kernels::isa::{self, Isa};

/// x W^T in f64 from the values as given (already rounded to their dtype).
fn naive(x: &Tensor, w: &Tensor) -> Tensor {
    let (m, kk) = x.dims2().unwrap();
    let n = w.dim(0).unwrap();
    let (xv, wv) = (flat(x), flat(w));
    let y: Vec<f32> = (0..m * n)
        .map(|o| {
            let (i, j) = (o / n, o % n);
            (0..kk)
                .map(|p| xv[i * kk + p] as f64 * wv[j * kk + p] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    Tensor::from_vec(y, (m, n), x.device()).unwrap()
}

/// The path `level` takes for these operands (see `matmul_nt_inference`).
fn expected_path(level: Isa, x_bf16: bool, w_bf16: bool, m: usize) -> &'static str {
    let bf16_products = x_bf16 && w_bf16 && m >= 4 && level >= Isa::Avx512Bf16;
    match level {
        Isa::Portable => "matmul_nt:portable",
        Isa::Neon => "matmul_nt:neon",
        Isa::Avx2 => "matmul_nt:avx2",
        _ if !bf16_products => "matmul_nt:avx512",
        _ if m < 24 => "matmul_nt_bf16:avx512bf16",
        Isa::Amx => "gemm_bf16:amx",
        _ => "gemm_bf16:avx512bf16",
    }
}

#[test]
fn every_level_the_cpu_runs_matches_the_naive_product() {
    let mut r = rng(21);
    let levels = [
        Isa::Portable,
        Isa::Neon,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Bf16,
        Isa::Amx,
    ];
    let (mut checked, mut skipped) = (Vec::new(), Vec::new());
    // (rows, n, k): decoding rows, full and edge tiles, k tails of both vector widths,
    // several row blocks, and enough rows for the packed bf16 kernels.
    let shapes = [
        (1, 13, 37),
        (2, 9, 8),
        (3, 20, 100),
        (4, 8, 64),
        (7, 33, 129),
        (30, 40, 300),
        (70, 17, 45),
    ];
    for level in levels {
        if !isa::detected().allows(level) {
            skipped.push(format!(
                "skipped path {level}: CPU lacks it (detected {})",
                isa::detected()
            ));
            continue;
        }
        for &(m, n, kk) in &shapes {
            let x = uniform(&mut r, &[m, kk], 1.0);
            let w = uniform(&mut r, &[n, kk], 1.0);
            for (x_dtype, w_dtype) in [
                (DType::F32, DType::F32),
                (DType::F32, DType::BF16),
                (DType::BF16, DType::BF16),
            ] {
                let (xt, wt) = (x.to_dtype(x_dtype).unwrap(), w.to_dtype(w_dtype).unwrap());
                let got = k::matmul_nt_inference_at(level, &xt, &wt).unwrap();
                let want = naive(&xt, &wt).to_dtype(x_dtype).unwrap();
                let what = format!("{level} m {m} n {n} k {kk} x {x_dtype:?} w {w_dtype:?}");
                let rtol = if x_dtype == DType::BF16 { 1e-2 } else { 1e-5 };
                assert_close(&got, &want, rtol, &what);
                let path = expected_path(level, x_dtype == DType::BF16, w_dtype == DType::BF16, m);
                assert!(
                    isa::paths_used().iter().any(|p| p == path),
                    "{what}: path {path} not recorded (recorded: {:?})",
                    isa::paths_used()
                );
                if !checked.contains(&path) {
                    checked.push(path);
                }
            }
        }
    }
    eprintln!("{}", skipped.join("\n"));
    eprintln!("checked paths: {checked:?}");
    assert!(checked.contains(&"matmul_nt:portable"));
}

#[test]
fn portable_inference_and_the_differentiable_op_give_the_same_bits() {
    let mut r = rng(4);
    let x = uniform(&mut r, &[6, 75], 1.0);
    let w = uniform(&mut r, &[19, 75], 1.0);
    let a = k::matmul_nt_inference_at(Isa::Portable, &x, &w).unwrap();
    let b = k::portable_matmul_nt(&x, &w).unwrap();
    let bits = |t: &Tensor| flat(t).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
}
