//! Gradient checks independent of the reference: finite differences, an f64 ground truth,
//! gradients reaching every input, and clear errors on bad input.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use oneshot_kernels as k;

/// Central finite differences of `loss(inputs)` w.r.t. `inputs[which]` at a few coordinates,
/// compared with the autograd gradient from the fused op.
fn finite_difference_check(
    what: &str,
    inputs: &[Tensor],
    which: usize,
    coords: &[usize],
    loss: impl Fn(&[Tensor]) -> Tensor,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let views: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = loss(&views).backward().unwrap();
    let analytic = flat(
        grads
            .get(vars[which].as_tensor())
            .expect("gradient present"),
    );
    let base = flat(&inputs[which]);
    let scale = analytic.iter().fold(0f32, |m, v| m.max(v.abs()));
    let h = 1e-2f32;
    for &c in coords {
        let eval = |delta: f32| {
            let mut data = base.clone();
            data[c] += delta;
            let mut ins = inputs.to_vec();
            ins[which] = Tensor::from_vec(data, inputs[which].dims(), &Device::Cpu).unwrap();
            loss(&ins)
                .to_dtype(DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let numeric = ((eval(h) - eval(-h)) / (2.0 * h as f64)) as f32;
        let tol = 2e-3 * scale.max(analytic[c].abs()) + 1e-4;
        assert!(
            (numeric - analytic[c]).abs() <= tol,
            "{what}: coordinate {c}: finite difference {numeric} vs analytic {} (tol {tol})",
            analytic[c]
        );
    }
}

#[test]
fn rms_norm_finite_differences() {
    let mut rng = rng(11);
    let x = uniform(&mut rng, &[3, 11], 2.0);
    let w = uniform(&mut rng, &[11], 1.5);
    let loss = |t: &[Tensor]| probe_loss(&k::rms_norm(&t[0], &t[1], 1e-5).unwrap(), 3).unwrap();
    finite_difference_check(
        "rms_norm dx",
        &[x.clone(), w.clone()],
        0,
        &[0, 5, 10, 17, 32],
        loss,
    );
    finite_difference_check("rms_norm dweight", &[x, w], 1, &[0, 4, 10], loss);
}

#[test]
fn logprobs_and_entropy_finite_differences() {
    let mut rng = rng(12);
    let logits = uniform(&mut rng, &[3, 17], 3.0);
    let targets = Tensor::new(&[4u32, 0, 16], &Device::Cpu).unwrap();
    for temp in [1.0, 0.7] {
        let loss = |t: &[Tensor]| {
            let (lp, ent) = k::logprobs_and_entropy(&t[0], &targets, temp).unwrap();
            (probe_loss(&lp, 4).unwrap() + probe_loss(&ent, 5).unwrap()).unwrap()
        };
        // Includes each row's target coordinate (4, 17, 50) and ordinary ones.
        finite_difference_check(
            &format!("logprobs T={temp}"),
            std::slice::from_ref(&logits),
            0,
            &[4, 9, 17, 20, 35, 50, 40],
            loss,
        );
    }
}

#[test]
fn rope_and_silu_mul_finite_differences() {
    let mut rng = rng(13);
    let x = uniform(&mut rng, &[1, 2, 3, 6], 1.0);
    let cos = uniform(&mut rng, &[1, 3, 3], 1.0);
    let sin = uniform(&mut rng, &[1, 3, 3], 1.0);
    let loss = |t: &[Tensor]| probe_loss(&k::rope(&t[0], &t[1], &t[2]).unwrap(), 6).unwrap();
    let ins = [x, cos, sin];
    finite_difference_check("rope dx", &ins, 0, &[0, 3, 7, 20, 35], loss);
    finite_difference_check("rope dcos", &ins, 1, &[0, 4, 8], loss);
    finite_difference_check("rope dsin", &ins, 2, &[1, 5, 7], loss);

    let gate = uniform(&mut rng, &[4, 5], 4.0);
    let up = uniform(&mut rng, &[4, 5], 1.0);
    let loss = |t: &[Tensor]| probe_loss(&k::silu_mul(&t[0], &t[1]).unwrap(), 7).unwrap();
    finite_difference_check(
        "silu_mul dgate",
        &[gate.clone(), up.clone()],
        0,
        &[0, 7, 19],
        loss,
    );
    finite_difference_check("silu_mul dup", &[gate, up], 1, &[2, 11, 18], loss);
}

#[test]
fn logprob_gradient_matches_f64_ground_truth() {
    // The same formula evaluated in f64 with candle primitives is the truth; the fused f32
    // gradient must agree to f32 precision relative to the gradient's scale.
    let mut rng = rng(14);
    let (n, v, temp) = (6, 3001, 1.3);
    let logits = uniform(&mut rng, &[n, v], 10.0);
    let targets = Tensor::new(&[0u32, 7, 3000, 1500, 2, 999], &Device::Cpu).unwrap();
    let probe_lp = uniform(&mut rng, &[n], 1.0);
    let probe_ent = uniform(&mut rng, &[n], 1.0);
    let loss = |lp: &Tensor, ent: &Tensor| {
        let a =
            (lp.to_dtype(DType::F64).unwrap() * probe_lp.to_dtype(DType::F64).unwrap()).unwrap();
        let b =
            (ent.to_dtype(DType::F64).unwrap() * probe_ent.to_dtype(DType::F64).unwrap()).unwrap();
        (a.sum_all().unwrap() + b.sum_all().unwrap()).unwrap()
    };
    let x = Var::from_tensor(&logits).unwrap();
    let (lp, ent) = k::logprobs_and_entropy(x.as_tensor(), &targets, temp).unwrap();
    let fused = flat(
        loss(&lp, &ent)
            .backward()
            .unwrap()
            .get(x.as_tensor())
            .unwrap(),
    );

    let x64 = Var::from_tensor(&logits.to_dtype(DType::F64).unwrap()).unwrap();
    let z = (x64.as_tensor() / temp).unwrap();
    let lsm = oneshot_kernels::reference::log_softmax_last_dim(&z).unwrap();
    let lp64 = lsm
        .gather(&targets.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    let ent64 = (lsm.exp().unwrap() * &lsm)
        .unwrap()
        .sum(1)
        .unwrap()
        .neg()
        .unwrap();
    let g64 = loss(&lp64, &ent64).backward().unwrap();
    let truth: Vec<f64> = g64
        .get(x64.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();

    let scale = truth.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = fused
        .iter()
        .zip(&truth)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0f64, f64::max);
    assert!(
        worst <= 1e-6 * scale,
        "worst abs error {worst:e} vs gradient scale {scale:e}"
    );
    let lp_truth: Vec<f64> = lp64.to_vec1().unwrap();
    for (a, b) in flat(&lp).iter().zip(&lp_truth) {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0),
            "logp {a} vs {b}"
        );
    }
}

fn assert_nonzero_grad(what: &str, grads: &candle_core::backprop::GradStore, v: &Var) {
    let g = grads
        .get(v.as_tensor())
        .unwrap_or_else(|| panic!("{what}: no gradient"));
    assert!(max_abs(g) > 0.0, "{what}: gradient is all zeros");
    assert!(
        flat(g).iter().all(|x| x.is_finite()),
        "{what}: non-finite gradient"
    );
}

#[test]
fn gradients_reach_every_input() {
    let mut rng = rng(15);
    let x = var(&mut rng, &[2, 3, 8], 1.0);
    let w = var(&mut rng, &[8], 1.0);
    let g = probe_loss(&k::rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap(), 1)
        .unwrap()
        .backward()
        .unwrap();
    assert_nonzero_grad("rms_norm x", &g, &x);
    assert_nonzero_grad("rms_norm weight", &g, &w);

    let q = var(&mut rng, &[2, 2, 3, 8], 1.0);
    let cos = var(&mut rng, &[2, 3, 4], 1.0);
    let sin = var(&mut rng, &[2, 3, 4], 1.0);
    let g = probe_loss(
        &k::rope(q.as_tensor(), cos.as_tensor(), sin.as_tensor()).unwrap(),
        2,
    )
    .unwrap()
    .backward()
    .unwrap();
    assert_nonzero_grad("rope x", &g, &q);
    assert_nonzero_grad("rope cos", &g, &cos);
    assert_nonzero_grad("rope sin", &g, &sin);

    let s = var(&mut rng, &[3, 9], 2.0);
    let g = probe_loss(&k::softmax_last_dim(s.as_tensor()).unwrap(), 3)
        .unwrap()
        .backward()
        .unwrap();
    assert_nonzero_grad("softmax x", &g, &s);
    let g = probe_loss(&k::log_softmax_last_dim(s.as_tensor()).unwrap(), 4)
        .unwrap()
        .backward()
        .unwrap();
    assert_nonzero_grad("log_softmax x", &g, &s);

    let gate = var(&mut rng, &[3, 9], 2.0);
    let up = var(&mut rng, &[3, 9], 2.0);
    let g = probe_loss(&k::silu_mul(gate.as_tensor(), up.as_tensor()).unwrap(), 5)
        .unwrap()
        .backward()
        .unwrap();
    assert_nonzero_grad("silu_mul gate", &g, &gate);
    assert_nonzero_grad("silu_mul up", &g, &up);

    // Through each output of the log-prob op separately.
    let logits = var(&mut rng, &[4, 30], 3.0);
    let targets = Tensor::new(&[1u32, 29, 0, 7], &Device::Cpu).unwrap();
    let (lp, ent) = k::logprobs_and_entropy(logits.as_tensor(), &targets, 0.9).unwrap();
    assert_nonzero_grad(
        "logprobs via logp",
        &lp.sum_all().unwrap().backward().unwrap(),
        &logits,
    );
    assert_nonzero_grad(
        "logprobs via entropy",
        &ent.sum_all().unwrap().backward().unwrap(),
        &logits,
    );
}

#[test]
fn logprob_values_are_exact_on_a_hand_case() {
    // Two tokens with logits (0, ln 3): p = (1/4, 3/4). At T = 1: logp(target 1) = ln 0.75,
    // H = -(0.25 ln 0.25 + 0.75 ln 0.75). At T = 0.5 the logits double: p = (1/10, 9/10).
    let logits = Tensor::new(&[[0f32, 3f32.ln()]], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[1u32], &Device::Cpu).unwrap();
    let (lp, ent) = k::logprobs_and_entropy(&logits, &targets, 1.0).unwrap();
    let h = -(0.25f32 * 0.25f32.ln() + 0.75 * 0.75f32.ln());
    assert!((flat(&lp)[0] - 0.75f32.ln()).abs() < 1e-6);
    assert!((flat(&ent)[0] - h).abs() < 1e-6);
    let (lp, ent) = k::logprobs_and_entropy(&logits, &targets, 0.5).unwrap();
    let h = -(0.1f32 * 0.1f32.ln() + 0.9 * 0.9f32.ln());
    assert!((flat(&lp)[0] - 0.9f32.ln()).abs() < 1e-6);
    assert!((flat(&ent)[0] - h).abs() < 1e-6);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dev = Device::Cpu;
    let logits = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
    let err =
        |r: candle_core::Result<(Tensor, Tensor)>| r.expect_err("expected an error").to_string();
    let e = err(k::logprobs_and_entropy(
        &logits,
        &Tensor::new(&[1u32, 5], &dev).unwrap(),
        1.0,
    ));
    assert!(
        e.contains("target 5 at row 1") && e.contains("vocabulary size 5"),
        "{e}"
    );
    let e = err(k::logprobs_and_entropy(
        &logits,
        &Tensor::new(&[1u32, 2], &dev).unwrap(),
        0.0,
    ));
    assert!(e.contains("temperature"), "{e}");
    let e = err(k::logprobs_and_entropy(
        &logits,
        &Tensor::new(&[1u32], &dev).unwrap(),
        1.0,
    ));
    assert!(e.contains("targets shape"), "{e}");

    let x = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
    let e = k::rms_norm(&x, &Tensor::ones(3, DType::F32, &dev).unwrap(), 1e-6)
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight shape"), "{e}");
    let q = Tensor::zeros((1, 2, 3, 4), DType::F32, &dev).unwrap();
    let bad = Tensor::zeros((1, 3, 3), DType::F32, &dev).unwrap();
    let good = Tensor::zeros((1, 3, 2), DType::F32, &dev).unwrap();
    let e = k::rope(&q, &bad, &good).unwrap_err().to_string();
    assert!(e.contains("cos shape"), "{e}");
    let e = k::silu_mul(&x, &Tensor::zeros((4, 2), DType::F32, &dev).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("up shape"), "{e}");
}
