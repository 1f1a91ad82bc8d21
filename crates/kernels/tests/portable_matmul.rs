//! `portable_matmul_nt`, the fixed-order differentiable x W^T: values and gradients against
//! candle's matmul and against finite differences, batched weights, the same bits with any
//! rayon thread count, and clear errors for mismatched shapes.

mod common;

use candle_core::{DType, Tensor, Var};
use common::*;
use oneshot_kernels as k;

/// Value and gradients (x, w) of `probe_loss(f(x, w))`.
fn value_and_grads(
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Var,
    w: &Var,
) -> (Tensor, Tensor, Tensor) {
    let y = f(x.as_tensor(), w.as_tensor()).unwrap();
    let grads = probe_loss(&y, 99).unwrap().backward().unwrap();
    (
        y,
        grads.get(x.as_tensor()).unwrap().clone(),
        grads.get(w.as_tensor()).unwrap().clone(),
    )
}

fn candle_nt(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if w.rank() == 2 {
        x.broadcast_matmul(&w.t()?)
    } else {
        x.matmul(&w.t()?)
    }
}

#[test]
fn values_and_gradients_match_candle_matmul() {
    let mut r = rng(3);
    // (x dims, w dims): shared weights with 2-D and 3-D x, k across the 16-wide blocks and
    // their tails, and batched weights (attention's scores and values).
    let cases: [(&[usize], &[usize]); 6] = [
        (&[5, 17], &[7, 17]),
        (&[1, 64], &[130, 64]),
        (&[70, 33], &[9, 33]),
        (&[2, 3, 40], &[11, 40]),
        (&[2, 3, 6, 8], &[2, 3, 5, 8]),
        (&[4, 9, 21], &[4, 13, 21]),
    ];
    for (xd, wd) in cases {
        let x = var(&mut r, xd, 1.0);
        let w = var(&mut r, wd, 1.0);
        let (y, dx, dw) = value_and_grads(k::portable_matmul_nt, &x, &w);
        let (y0, dx0, dw0) = value_and_grads(candle_nt, &x, &w);
        let what = format!("x {xd:?} w {wd:?}");
        assert_close(&y, &y0, 1e-5, &format!("{what}: y"));
        assert_close(&dx, &dx0, 1e-5, &format!("{what}: dx"));
        assert_close(&dw, &dw0, 1e-5, &format!("{what}: dw"));
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut r = rng(5);
    let x = uniform(&mut r, &[3, 2, 12], 1.0);
    let w = uniform(&mut r, &[3, 5, 12], 1.0);
    let probe = uniform(&mut r, &[3, 2, 5], 1.0);
    let loss = |x: &Tensor, w: &Tensor| -> f64 {
        let y = k::portable_matmul_nt(x, w).unwrap();
        flat(&y)
            .iter()
            .zip(flat(&probe))
            .map(|(&a, b)| a as f64 * b as f64)
            .sum()
    };
    let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
    let y = k::portable_matmul_nt(xv.as_tensor(), wv.as_tensor()).unwrap();
    let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let eps = 1e-2f32;
    for (t, v, is_x) in [(&x, &xv, true), (&w, &wv, false)] {
        let g = flat(grads.get(v.as_tensor()).unwrap());
        let base = flat(t);
        for i in (0..base.len()).step_by(7) {
            let shifted = |d: f32| {
                let mut b = base.clone();
                b[i] += d;
                Tensor::from_vec(b, t.dims(), t.device()).unwrap()
            };
            let (plus, minus) = (shifted(eps), shifted(-eps));
            let fd = if is_x {
                (loss(&plus, &w) - loss(&minus, &w)) / (2.0 * eps as f64)
            } else {
                (loss(&x, &plus) - loss(&x, &minus)) / (2.0 * eps as f64)
            };
            assert!(
                (g[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "{} element {i}: autograd {} vs finite difference {fd}",
                if is_x { "dx" } else { "dw" },
                g[i]
            );
        }
    }
}

#[test]
fn same_bits_with_any_thread_count_and_dtype_follows_x() {
    let mut r = rng(8);
    // Enough columns and inner length for the work to be split into many tasks.
    let x = var(&mut r, &[37, 300], 1.0);
    let w = var(&mut r, &[520, 300], 1.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (y, dx, dw) = value_and_grads(k::portable_matmul_nt, &x, &w);
            [flat(&y), flat(&dx), flat(&dw)]
                .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>())
        })
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        assert!(
            one == run(threads),
            "results differ between 1 and {threads} threads"
        );
    }
    let xb = x.as_tensor().to_dtype(DType::BF16).unwrap();
    let y = k::portable_matmul_nt(&xb, w.as_tensor()).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
}

#[test]
fn mismatched_shapes_are_errors() {
    let mut r = rng(9);
    let x = uniform(&mut r, &[2, 3, 8], 1.0);
    for wd in [&[4usize, 7][..], &[3, 4, 8], &[8]] {
        let w = uniform(&mut r, wd, 1.0);
        let err = k::portable_matmul_nt(&x, &w).unwrap_err().to_string();
        assert!(err.contains("portable_matmul_nt"), "{wd:?}: {err}");
    }
}
