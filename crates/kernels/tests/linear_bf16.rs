//! `linear_bf16` (mixed-precision x W^T, forward and backward) against the unfused reference
//! (`reference::linear_bf16`: the same bf16 rounding of the operands, candle's f32 matmul and
//! candle's autograd), on shapes with edge tiles, k tails, several row blocks and rank-3 x;
//! with f32 and bf16 weights, with and without a shared bf16 copy of the weight.

mod common;

use candle_core::{DType, Tensor, Var};
use common::*;
use oneshot_kernels::{self as k, reference, Bf16Weight};

/// Our backward rounds dy to bf16 before its products (as autocast does). The loss weights
/// below (= dy) are bf16 values, so that rounding is exact and both sides multiply the same
/// numbers: only the summation order differs.
const RTOL: f32 = 1e-4;

fn loss_weights(r: &mut rand_chacha::ChaCha8Rng, dims: &[usize]) -> Tensor {
    uniform(r, dims, 1.0)
        .to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

#[test]
fn values_and_gradients_match_the_reference() {
    let mut r = rng(21);
    // (leading dims of x, n, k)
    // The last two cross the kernel's inner-dim blocks (4096) in the forward and in dx.
    let cases: [(&[usize], usize, usize); 9] = [
        (&[1], 3, 16),
        (&[3], 5, 17),
        (&[4], 4, 32),
        (&[7], 9, 40),
        (&[67], 70, 96),
        (&[130], 12, 320),
        (&[2, 33], 19, 64),
        (&[5], 6, 8200),
        (&[9], 4100, 24),
    ];
    for (lead, n, kk) in cases {
        let mut xd = lead.to_vec();
        xd.push(kk);
        for w_dtype in [DType::F32, DType::BF16] {
            for shared in [false, true] {
                let what = format!("x {xd:?} w [{n}, {kk}] {w_dtype:?} shared copy {shared}");
                let x = var(&mut r, &xd, 1.0);
                let w =
                    Var::from_tensor(&uniform(&mut r, &[n, kk], 1.0).to_dtype(w_dtype).unwrap())
                        .unwrap();
                let mut yd = lead.to_vec();
                yd.push(n);
                let lw = loss_weights(&mut r, &yd);

                let copy = shared.then(|| Bf16Weight::new(w.as_tensor()).unwrap());
                let got = k::linear_bf16(x.as_tensor(), w.as_tensor(), copy.as_ref()).unwrap();
                let want = reference::linear_bf16(x.as_tensor(), w.as_tensor()).unwrap();
                assert_eq!(got.dtype(), DType::F32, "{what}: output dtype");
                assert_close(&got, &want, 1e-5, &format!("{what}: values"));

                let g_got = (&got * &lw).unwrap().sum_all().unwrap().backward().unwrap();
                let g_want = (&want * &lw)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for (name, v) in [("dx", &x), ("dw", &w)] {
                    let a = g_got
                        .get(v.as_tensor())
                        .unwrap_or_else(|| panic!("{what}: no {name}"));
                    let b = g_want.get(v.as_tensor()).unwrap();
                    assert_eq!(a.dtype(), v.dtype(), "{what}: {name} dtype");
                    // A bf16 weight's gradient is rounded to bf16 on both sides.
                    let rtol = if v.dtype() == DType::BF16 { 8e-3 } else { RTOL };
                    assert_close(a, b, rtol, &format!("{what}: {name}"));
                }
            }
        }
    }
}

/// A hand-computed case whose values are all exact in bf16, so forward and both gradients
/// must come out exactly.
#[test]
fn gradient_matches_a_hand_computed_case() {
    // x [2, 3], w [2, 3], loss = sum(y * L): dx = L . w, dw = L^T . x.
    let x = Var::from_tensor(
        &Tensor::new(
            &[[1.0f32, 2.0, -1.0], [0.5, -0.25, 4.0]],
            &candle_core::Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let w = Var::from_tensor(
        &Tensor::new(
            &[[2.0f32, 0.0, 1.0], [-1.0, 3.0, 0.5]],
            &candle_core::Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let l = Tensor::new(&[[1.0f32, -2.0], [0.5, 1.0]], &candle_core::Device::Cpu).unwrap();
    let y = k::linear_bf16(x.as_tensor(), w.as_tensor(), None).unwrap();
    assert_eq!(
        y.to_vec2::<f32>().unwrap(),
        vec![vec![1.0, 4.5], vec![5.0, 0.75]]
    );
    let g = (&y * &l).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    let dw = g.get(w.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(dx, vec![vec![4.0, -6.0, 0.0], vec![0.0, 3.0, 1.0]]);
    assert_eq!(dw, vec![vec![1.25, 1.875, 1.0], vec![-1.5, -4.25, 6.0]]);
}

#[test]
fn rejects_mismatched_shapes_and_stale_copies() {
    let mut r = rng(5);
    let x = uniform(&mut r, &[4, 8], 1.0);
    let w = uniform(&mut r, &[3, 9], 1.0);
    let err = k::linear_bf16(&x, &w, None).unwrap_err().to_string();
    assert!(err.contains("inner dim"), "{err}");
    let w_ok = uniform(&mut r, &[3, 8], 1.0);
    let other = Bf16Weight::new(&uniform(&mut r, &[5, 8], 1.0)).unwrap();
    match k::linear_bf16(&x, &w_ok, Some(&other)) {
        // Only the fused path checks the copy; the reference ignores it.
        Err(e) => assert!(e.to_string().contains("bf16 copy"), "{e}"),
        Ok(_) => assert!(!k::isa::detected().allows(k::isa::Isa::Avx512Bf16)),
    }
}

/// A weight packed once for decoding steps gives the same bits as packing it per call, at
/// every row count (below the packed kernels' threshold it is not used), over repeated calls
/// with different activations; it is packed only by a call with enough rows, and refuses a
/// weight of another shape.
#[test]
fn a_weight_packed_on_first_use_gives_the_per_call_products() {
    let mut r = rng(9);
    let packs = k::isa::active().allows(k::isa::Isa::Avx512Bf16);
    eprintln!(
        "packed kernels at the active level {:?}: {}",
        k::isa::active(),
        if packs {
            "yes"
        } else {
            "none (the copy holds nothing)"
        }
    );
    for w_dtype in [DType::F32, DType::BF16] {
        for (n, kk) in [(70, 96), (33, 1100)] {
            let w = uniform(&mut r, &[n, kk], 1.0).to_dtype(w_dtype).unwrap();
            let packed = Bf16Weight::packed_on_first_use();
            for m in [3, 24, 40, 1, 64] {
                let x = uniform(&mut r, &[m, kk], 1.0);
                let want = k::linear_bf16(&x, &w, None).unwrap();
                let got = k::linear_bf16(&x, &w, Some(&packed)).unwrap();
                assert_eq!(
                    got.to_vec2::<f32>().unwrap(),
                    want.to_vec2::<f32>().unwrap(),
                    "w [{n}, {kk}] {w_dtype:?}, {m} rows"
                );
                if m == 3 {
                    assert_eq!(packed.packed_bytes(), 0, "packed by a call of {m} rows");
                }
            }
            // n x k bf16 values, padded to whole panels and inner blocks.
            let bytes = packed.packed_bytes();
            if packs {
                assert!(bytes >= n * kk * 2, "{bytes} bytes for w [{n}, {kk}]");
            } else {
                assert_eq!(bytes, 0);
            }
        }
    }
    if packs {
        let packed = Bf16Weight::packed_on_first_use();
        let x = uniform(&mut r, &[32, 8], 1.0);
        k::linear_bf16(&x, &uniform(&mut r, &[5, 8], 1.0), Some(&packed)).unwrap();
        let err = k::linear_bf16(&x, &uniform(&mut r, &[6, 8], 1.0), Some(&packed))
            .unwrap_err()
            .to_string();
        assert!(err.contains("packed copy"), "{err}");
    }
}
