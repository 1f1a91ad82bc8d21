//! Fused ops vs the reference composition: values and gradients, on odd shapes, contiguous and
//! non-contiguous inputs.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use oneshot_kernels as k;
use oneshot_kernels::reference as r;

const VALUE_RTOL: f32 = 1e-5;
const GRAD_RTOL: f32 = 1e-4;

/// Runs `f` on `inputs` through fused and reference paths, checks values, then back-propagates
/// the same probe loss through both and checks the gradient of every input variable.
fn check_op(
    what: &str,
    vars: &[&Var],
    views: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Vec<Tensor>,
    reference: impl Fn(&[Tensor]) -> Vec<Tensor>,
) {
    let got = fused(views);
    let want = reference(views);
    assert_eq!(got.len(), want.len());
    let mut loss_got = Tensor::new(0f32, &Device::Cpu).unwrap();
    let mut loss_want = loss_got.clone();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.dtype(), w.dtype(), "{what}: output {i} dtype");
        assert_close(g, w, VALUE_RTOL, &format!("{what}: output {i}"));
        let seed = 100 + i as u64;
        loss_got = (loss_got + probe_loss(g, seed).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
        loss_want =
            (loss_want + probe_loss(w, seed).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
    }
    let grads_got = loss_got.backward().unwrap();
    let grads_want = loss_want.backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let gg = grads_got
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no fused grad for input {i}"));
        let gw = grads_want
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no reference grad for input {i}"));
        assert_close(gg, gw, GRAD_RTOL, &format!("{what}: grad of input {i}"));
    }
}

#[test]
fn rms_norm_matches_reference() {
    let mut rng = rng(1);
    for (dims, eps) in [
        (vec![5, 7], 1e-6),
        (vec![2, 3, 129], 1e-5),
        (vec![1, 896], 1e-6),
        (vec![33, 16], 1e-2),
    ] {
        let d = *dims.last().unwrap();
        let x = var(&mut rng, &dims, 3.0);
        let w = var(&mut rng, &[d], 1.5);
        check_op(
            &format!("rms_norm {dims:?}"),
            &[&x, &w],
            &[x.as_tensor().clone(), w.as_tensor().clone()],
            |t| vec![k::rms_norm(&t[0], &t[1], eps).unwrap()],
            |t| vec![r::rms_norm(&t[0], &t[1], eps).unwrap()],
        );
        // Same values presented through a transposed view.
        let (xv, xt) = transposed_var(&mut rng, &dims, 3.0);
        check_op(
            &format!("rms_norm non-contiguous {dims:?}"),
            &[&xv, &w],
            &[xt, w.as_tensor().clone()],
            |t| vec![k::rms_norm(&t[0], &t[1], eps).unwrap()],
            |t| vec![r::rms_norm(&t[0], &t[1], eps).unwrap()],
        );
    }
}

#[test]
fn rope_matches_reference() {
    let mut rng = rng(2);
    for (b, h, t, d) in [(1, 1, 1, 2), (2, 3, 5, 14), (3, 2, 7, 64), (1, 14, 9, 66)] {
        let x = var(&mut rng, &[b, h, t, d], 2.0);
        let cos = var(&mut rng, &[b, t, d / 2], 1.0);
        let sin = var(&mut rng, &[b, t, d / 2], 1.0);
        check_op(
            &format!("rope {:?}", (b, h, t, d)),
            &[&x, &cos, &sin],
            &[
                x.as_tensor().clone(),
                cos.as_tensor().clone(),
                sin.as_tensor().clone(),
            ],
            |v| vec![k::rope(&v[0], &v[1], &v[2]).unwrap()],
            |v| vec![r::rope(&v[0], &v[1], &v[2]).unwrap()],
        );
        // Non-contiguous x ([b, t, h, d] stored, viewed as [b, h, t, d], like a projection
        // output before its transpose) and non-contiguous tables.
        let xs = var(&mut rng, &[b, t, h, d], 2.0);
        let xt = xs.as_tensor().transpose(1, 2).unwrap();
        let (cv, ct) = transposed_var(&mut rng, &[b, t, d / 2], 1.0);
        let (sv, st) = transposed_var(&mut rng, &[b, t, d / 2], 1.0);
        check_op(
            &format!("rope non-contiguous {:?}", (b, h, t, d)),
            &[&xs, &cv, &sv],
            &[xt, ct, st],
            |v| vec![k::rope(&v[0], &v[1], &v[2]).unwrap()],
            |v| vec![r::rope(&v[0], &v[1], &v[2]).unwrap()],
        );
    }
}

#[test]
fn rope_with_constant_tables_only_differentiates_x() {
    let mut rng = rng(3);
    let x = var(&mut rng, &[2, 3, 4, 8], 1.0);
    let cos = uniform(&mut rng, &[2, 4, 4], 1.0);
    let sin = uniform(&mut rng, &[2, 4, 4], 1.0);
    let loss = probe_loss(&k::rope(x.as_tensor(), &cos, &sin).unwrap(), 9).unwrap();
    let grads = loss.backward().unwrap();
    let gx = grads.get(x.as_tensor()).expect("grad of x");
    let want = r::rope(x.as_tensor(), &cos, &sin).unwrap();
    let want_grads = probe_loss(&want, 9).unwrap().backward().unwrap();
    assert_close(
        gx,
        want_grads.get(x.as_tensor()).unwrap(),
        GRAD_RTOL,
        "rope dx",
    );
}

#[test]
fn softmax_and_log_softmax_match_reference() {
    let mut rng = rng(4);
    for dims in [vec![3, 1], vec![4, 7], vec![2, 3, 37], vec![2, 1, 5, 300]] {
        for log in [false, true] {
            let what = format!("{} {dims:?}", if log { "log_softmax" } else { "softmax" });
            let f = if log {
                k::log_softmax_last_dim
            } else {
                k::softmax_last_dim
            };
            let g = if log {
                r::log_softmax_last_dim
            } else {
                r::softmax_last_dim
            };
            let x = var(&mut rng, &dims, 6.0);
            check_op(
                &what,
                &[&x],
                &[x.as_tensor().clone()],
                |t| vec![f(&t[0]).unwrap()],
                |t| vec![g(&t[0]).unwrap()],
            );
            if dims.len() >= 2 && dims[dims.len() - 2] > 1 && dims[dims.len() - 1] > 1 {
                let (xv, xt) = transposed_var(&mut rng, &dims, 6.0);
                check_op(
                    &format!("{what} non-contiguous"),
                    &[&xv],
                    &[xt],
                    |t| vec![f(&t[0]).unwrap()],
                    |t| vec![g(&t[0]).unwrap()],
                );
            }
        }
    }
}

#[test]
fn softmax_with_large_negative_mask_is_finite_and_zero_there() {
    // Attention masks add -1e9 (candle-notes: never -inf); masked entries must get ~0 weight.
    let x = Tensor::new(
        &[[0.5f32, -1e9, 1.0, -1e9], [-1e9, -1e9, -1e9, 2.0]],
        &Device::Cpu,
    )
    .unwrap();
    let y = flat(&k::softmax_last_dim(&x).unwrap());
    assert!(y.iter().all(|v| v.is_finite()));
    assert!(y[1] < 1e-30 && y[3] < 1e-30 && y[4] < 1e-30);
    assert!((y[7] - 1.0).abs() < 1e-6);
    let e = (0.5f32).exp() + 1f32.exp();
    assert!((y[0] - 0.5f32.exp() / e).abs() < 1e-6);
    let ly = flat(&k::log_softmax_last_dim(&x).unwrap());
    assert!(ly.iter().all(|v| v.is_finite()));
    assert!(ly[7].abs() < 1e-6);
}

#[test]
fn silu_mul_matches_reference() {
    let mut rng = rng(5);
    for dims in [vec![1], vec![3, 5], vec![2, 7, 33], vec![4, 4864]] {
        let gate = var(&mut rng, &dims, 8.0);
        let up = var(&mut rng, &dims, 2.0);
        check_op(
            &format!("silu_mul {dims:?}"),
            &[&gate, &up],
            &[gate.as_tensor().clone(), up.as_tensor().clone()],
            |t| vec![k::silu_mul(&t[0], &t[1]).unwrap()],
            |t| vec![r::silu_mul(&t[0], &t[1]).unwrap()],
        );
        if dims.len() >= 2 {
            let (gv, gt) = transposed_var(&mut rng, &dims, 8.0);
            let (uv, ut) = transposed_var(&mut rng, &dims, 2.0);
            check_op(
                &format!("silu_mul non-contiguous {dims:?}"),
                &[&gv, &uv],
                &[gt, ut],
                |t| vec![k::silu_mul(&t[0], &t[1]).unwrap()],
                |t| vec![r::silu_mul(&t[0], &t[1]).unwrap()],
            );
        }
    }
}

fn targets(rng: &mut rand_chacha::ChaCha8Rng, n: usize, v: usize) -> Tensor {
    use rand::Rng;
    let t: Vec<u32> = (0..n).map(|_| rng.gen_range(0..v as u32)).collect();
    Tensor::new(t, &Device::Cpu).unwrap()
}

#[test]
fn logprobs_and_entropy_match_reference() {
    let mut rng = rng(6);
    for (n, v, temp) in [
        (1, 2, 1.0),
        (5, 7, 1.0),
        (3, 1001, 0.6),
        (8, 4099, 1.7),
        (2, 50, 0.05),
    ] {
        let logits = var(&mut rng, &[n, v], 10.0);
        let tg = targets(&mut rng, n, v);
        let run = |f: fn(&Tensor, &Tensor, f64) -> candle_core::Result<(Tensor, Tensor)>,
                   t: &[Tensor]| {
            let (a, b) = f(&t[0], &tg, temp).unwrap();
            vec![a, b]
        };
        check_op(
            &format!("logprobs {:?}", (n, v, temp)),
            &[&logits],
            &[logits.as_tensor().clone()],
            |t| run(k::logprobs_and_entropy, t),
            |t| run(r::logprobs_and_entropy, t),
        );
        if n > 1 {
            let (lv, lt) = transposed_var(&mut rng, &[n, v], 10.0);
            check_op(
                &format!("logprobs non-contiguous {:?}", (n, v, temp)),
                &[&lv],
                &[lt],
                |t| run(k::logprobs_and_entropy, t),
                |t| run(r::logprobs_and_entropy, t),
            );
        }
    }
}

#[test]
fn logprobs_accept_half_precision_logits_and_int64_targets() {
    let mut rng = rng(7);
    let (n, v) = (4, 333);
    for dtype in [DType::BF16, DType::F16] {
        let logits =
            Var::from_tensor(&uniform(&mut rng, &[n, v], 8.0).to_dtype(dtype).unwrap()).unwrap();
        let tg = targets(&mut rng, n, v);
        let (lp, ent) =
            k::logprobs_and_entropy(logits.as_tensor(), &tg.to_dtype(DType::I64).unwrap(), 0.8)
                .unwrap();
        assert_eq!((lp.dtype(), ent.dtype()), (DType::F32, DType::F32));
        // The reference on the same (exactly representable) values in f32.
        let as_f32 = logits.as_tensor().to_dtype(DType::F32).unwrap();
        let (wlp, went) = r::logprobs_and_entropy(&as_f32, &tg, 0.8).unwrap();
        assert_close(&lp, &wlp, VALUE_RTOL, &format!("{dtype:?} logp"));
        assert_close(&ent, &went, VALUE_RTOL, &format!("{dtype:?} entropy"));
        let grads = (probe_loss(&lp, 1).unwrap() + probe_loss(&ent, 2).unwrap())
            .unwrap()
            .backward()
            .unwrap();
        let g = grads.get(logits.as_tensor()).expect("grad of half logits");
        assert_eq!(g.dtype(), dtype);
        let x = Var::from_tensor(&as_f32).unwrap();
        let (a, b) = r::logprobs_and_entropy(x.as_tensor(), &tg, 0.8).unwrap();
        let wg = (probe_loss(&a, 1).unwrap() + probe_loss(&b, 2).unwrap())
            .unwrap()
            .backward()
            .unwrap();
        // The gradient is rounded to the half dtype: compare at that precision.
        assert_close(
            g,
            wg.get(x.as_tensor()).unwrap(),
            1e-2,
            &format!("{dtype:?} dlogits"),
        );
    }
}

#[test]
fn half_precision_inputs_round_trip_dtype() {
    let mut rng = rng(8);
    let x = uniform(&mut rng, &[3, 16], 2.0)
        .to_dtype(DType::BF16)
        .unwrap();
    let w = uniform(&mut rng, &[16], 1.0).to_dtype(DType::BF16).unwrap();
    let y = k::rms_norm(&x, &w, 1e-6).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    assert_close(
        &y,
        &r::rms_norm(&x, &w, 1e-6).unwrap(),
        1e-2,
        "bf16 rms_norm",
    );
    let s = k::softmax_last_dim(&x).unwrap();
    assert_eq!(s.dtype(), DType::BF16);
    assert_close(
        &s,
        &r::softmax_last_dim(&x.to_dtype(DType::F32).unwrap()).unwrap(),
        1e-2,
        "bf16 softmax",
    );
    let m = k::silu_mul(&x, &x).unwrap();
    assert_eq!(m.dtype(), DType::BF16);
}
