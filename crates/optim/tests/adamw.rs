//! The fused AdamW: against torch.optim.AdamW (fixture), hand-computed steps, clipping, NaN
//! refusal, bf16 master weights, gradient accumulation and bit-identical resume.

use candle_core::{DType, Device, Tensor, Var};
use half::bf16;
use oneshot_optim::{AdamW, AdamWConfig, CandleOpsAdamW};
use serde_json::Value;

fn vals(v: &Var) -> Vec<f32> {
    v.as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn var(values: &[f32], shape: &[usize]) -> Var {
    Var::from_slice(values, shape, &Device::Cpu).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

/// `sum_p sum(p * G_p)`: its gradient w.r.t. each listed parameter is exactly `G_p`.
fn linear_loss(terms: &[(&Var, &[f32])]) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (v, g) in terms {
        let g = Tensor::from_slice(g, v.shape(), &Device::Cpu).unwrap();
        let t = (v.as_tensor().to_dtype(DType::F32).unwrap() * g)
            .unwrap()
            .sum_all()
            .unwrap();
        total = Some(match total {
            None => t,
            Some(acc) => (acc + t).unwrap(),
        });
    }
    total.unwrap()
}

fn cfg(lr: f64, wd: f64, clip: Option<f64>) -> AdamWConfig {
    AdamWConfig {
        lr,
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: wd,
        max_grad_norm: clip,
    }
}

#[test]
fn matches_torch_adamw_with_clipping_skipped_params_and_lr_changes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/adamw.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = &fx["config"];
    let config = AdamWConfig {
        lr: c["lr"].as_f64().unwrap(),
        betas: (
            c["betas"][0].as_f64().unwrap(),
            c["betas"][1].as_f64().unwrap(),
        ),
        eps: c["eps"].as_f64().unwrap(),
        weight_decay: c["weight_decay"].as_f64().unwrap(),
        max_grad_norm: c["max_grad_norm"].as_f64(),
    };
    let names = ["w", "b"];
    let vars: Vec<Var> = names
        .iter()
        .map(|n| {
            let shape: Vec<usize> = fx["shapes"][n]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            var(&f32s(&fx["init"][n]), &shape)
        })
        .collect();
    let mut opt = AdamW::new(
        names
            .iter()
            .map(|n| n.to_string())
            .zip(vars.iter().cloned())
            .collect(),
        config,
    )
    .unwrap();
    let steps = fx["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let mut clipped_steps = 0;
    for (k, s) in steps.iter().enumerate() {
        let grads: Vec<(usize, Vec<f32>)> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| !s["grads"][**n].is_null())
            .map(|(i, n)| (i, f32s(&s["grads"][*n])))
            .collect();
        let terms: Vec<(&Var, &[f32])> = grads
            .iter()
            .map(|(i, g)| (&vars[*i], g.as_slice()))
            .collect();
        let store = linear_loss(&terms).backward().unwrap();
        let stats = opt.step(&store, s["lr"].as_f64().unwrap()).unwrap();
        let want_norm = s["grad_norm"].as_f64().unwrap();
        assert!(
            (stats.grad_norm - want_norm).abs() < 1e-5 * want_norm,
            "step {k} norm {} vs {want_norm}",
            stats.grad_norm
        );
        if stats.clip_coef < 1.0 {
            clipped_steps += 1;
        }
        for (i, n) in names.iter().enumerate() {
            close(
                &vals(&vars[i]),
                &f32s(&s["params_after"][*n]),
                2e-7,
                &format!("step {k} param {n}"),
            );
        }
    }
    assert!(
        (1..3).contains(&clipped_steps),
        "the fixture mixes clipped and unclipped steps"
    );
}

#[test]
fn first_two_steps_match_hand_computation() {
    // With m_hat = g and v_hat = g^2 after bias correction, each step moves lr * g / (|g| + eps)
    // after decaying p by (1 - lr * wd).
    let p = var(&[1.0, -2.0], &[2]);
    let mut opt = AdamW::new(vec![("p".into(), p.clone())], cfg(0.1, 0.5, None)).unwrap();
    let g = [0.5f32, -0.25];
    let s1 = opt.step_host(&[Some(&g)], 0.1).unwrap();
    assert_eq!((s1.step, s1.clip_coef), (1, 1.0));
    assert!((s1.grad_norm - (0.3125f64).sqrt()).abs() < 1e-9);
    close(&vals(&p), &[0.85, -1.8], 1e-6, "step 1");
    opt.step_host(&[Some(&g)], 0.1).unwrap();
    close(
        &vals(&p),
        &[0.85 * 0.95 - 0.1, -1.8 * 0.95 + 0.1],
        1e-6,
        "step 2",
    );
}

#[test]
fn clipping_follows_clip_grad_norm_semantics() {
    // eps = 1 makes the update depend on the gradient's scale, so the clipping shows:
    // g = [3, 4] (norm 5) clipped to ~[0.6, 0.8]; update = lr * gc / (|gc| + 1).
    let mk = |clip| {
        let p = var(&[0.0, 0.0], &[2]);
        let c = AdamWConfig {
            lr: 1.0,
            betas: (0.9, 0.999),
            eps: 1.0,
            weight_decay: 0.0,
            max_grad_norm: clip,
        };
        (p.clone(), AdamW::new(vec![("p".into(), p)], c).unwrap())
    };
    let (p, mut opt) = mk(Some(1.0));
    let s = opt.step_host(&[Some(&[3.0, 4.0])], 1.0).unwrap();
    assert_eq!(s.grad_norm, 5.0, "pre-clip norm is reported");
    assert!((s.clip_coef - 1.0 / (5.0 + 1e-6)).abs() < 1e-12);
    close(&vals(&p), &[-0.6 / 1.6, -0.8 / 1.8], 1e-6, "clipped update");

    let (p, mut opt) = mk(Some(10.0));
    let s = opt.step_host(&[Some(&[3.0, 4.0])], 1.0).unwrap();
    assert_eq!(s.clip_coef, 1.0, "norm below the threshold: untouched");
    close(
        &vals(&p),
        &[-3.0 / 4.0, -4.0 / 5.0],
        1e-6,
        "unclipped update",
    );

    let (_, mut opt) = mk(None);
    assert_eq!(
        opt.step_host(&[Some(&[300.0, 400.0])], 1.0)
            .unwrap()
            .clip_coef,
        1.0
    );
}

#[test]
fn non_finite_gradient_refuses_the_step_and_names_the_parameter() {
    let a = var(&[1.0, 2.0], &[2]);
    let b = var(&[3.0], &[1]);
    let mut opt = AdamW::new(
        vec![("layer.a".into(), a.clone()), ("layer.b".into(), b.clone())],
        cfg(0.1, 0.1, Some(1.0)),
    )
    .unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        let err = opt
            .step_host(&[Some(&[0.1, 0.2]), Some(&[bad])], 0.1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`layer.b`") && err.contains("non-finite"),
            "{err}"
        );
    }
    assert_eq!(opt.steps(), 0);
    assert_eq!(vals(&a), vec![1.0, 2.0], "nothing was updated");
    // The state is untouched: the next good step equals a fresh optimiser's first step.
    let fresh_a = var(&[1.0, 2.0], &[2]);
    let fresh_b = var(&[3.0], &[1]);
    let mut fresh = AdamW::new(
        vec![
            ("layer.a".into(), fresh_a.clone()),
            ("layer.b".into(), fresh_b.clone()),
        ],
        cfg(0.1, 0.1, Some(1.0)),
    )
    .unwrap();
    opt.step_host(&[Some(&[0.1, 0.2]), Some(&[0.3])], 0.1)
        .unwrap();
    fresh
        .step_host(&[Some(&[0.1, 0.2]), Some(&[0.3])], 0.1)
        .unwrap();
    assert_eq!(vals(&a), vals(&fresh_a));
    assert_eq!(vals(&b), vals(&fresh_b));
}

#[test]
fn parameter_without_gradient_is_left_alone() {
    let a = var(&[1.0], &[1]);
    let b = var(&[5.0], &[1]);
    let mut opt = AdamW::new(
        vec![("a".into(), a.clone()), ("b".into(), b.clone())],
        cfg(0.1, 0.5, None),
    )
    .unwrap();
    let store = linear_loss(&[(&a, &[1.0])]).backward().unwrap();
    opt.step(&store, 0.1).unwrap();
    assert_eq!(vals(&b), vec![5.0], "no decay without a gradient, as torch");
    assert_ne!(vals(&a), vec![1.0]);
}

#[test]
fn bf16_parameters_accumulate_small_updates_in_the_f32_master() {
    let p = Var::from_tensor(
        &Tensor::new(&[1.0f32], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap(),
    )
    .unwrap();
    let mut opt = AdamW::new(vec![("p".into(), p.clone())], cfg(1e-3, 0.0, None)).unwrap();
    for _ in 0..20 {
        // Each step moves ~1e-3, under half a bf16 ulp at 1.0 (2^-9): lost without a master.
        let store = linear_loss(&[(&p, &[1.0])]).backward().unwrap();
        opt.step(&store, 1e-3).unwrap();
    }
    assert_eq!(p.dtype(), DType::BF16);
    let got = vals(&p)[0];
    assert_eq!(got, bf16::from_f32(1.0 - 0.02).to_f32(), "value {got}");
}

#[test]
fn accumulated_micro_batches_equal_one_big_batch() {
    let init = [0.5f32, -1.0, 2.0];
    let g1 = [0.1f32, 0.2, -0.3];
    let g2 = [0.05f32, -0.4, 0.1];
    let big = var(&init, &[3]);
    let small = var(&init, &[3]);
    let mut opt_big =
        AdamW::new(vec![("p".into(), big.clone())], cfg(0.01, 0.1, Some(0.3))).unwrap();
    let mut opt_small =
        AdamW::new(vec![("p".into(), small.clone())], cfg(0.01, 0.1, Some(0.3))).unwrap();
    for _ in 0..3 {
        let both: Vec<f32> = g1.iter().zip(&g2).map(|(a, b)| a + b).collect();
        let s_big = opt_big
            .step(&linear_loss(&[(&big, &both)]).backward().unwrap(), 0.01)
            .unwrap();
        let mut acc = opt_small.accumulator();
        acc.add(&linear_loss(&[(&small, &g1)]).backward().unwrap())
            .unwrap();
        acc.add(&linear_loss(&[(&small, &g2)]).backward().unwrap())
            .unwrap();
        assert_eq!(acc.passes(), 2);
        close(
            &acc.grad("p").unwrap().unwrap(),
            &both,
            1e-7,
            "summed gradient",
        );
        let s_small = opt_small.step_accumulated(&acc, 0.01).unwrap();
        assert!((s_big.grad_norm - s_small.grad_norm).abs() < 1e-6);
        close(&vals(&small), &vals(&big), 1e-7, "params");
    }
    let other = AdamW::new(vec![("q".into(), var(&[0.0], &[1]))], cfg(0.01, 0.0, None)).unwrap();
    let err = opt_small
        .step_accumulated(&other.accumulator(), 0.01)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not belong"), "{err}");
}

#[test]
fn fused_matches_the_candle_ops_reference() {
    let dev = Device::Cpu;
    let shapes: [&[usize]; 3] = [&[16, 8], &[8], &[33]];
    let mk = || -> Vec<Var> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n: usize = s.iter().product();
                let v: Vec<f32> = (0..n)
                    .map(|k| ((k * 7 + i * 3) % 11) as f32 / 5.0 - 1.0)
                    .collect();
                Var::from_slice(&v, *s, &dev).unwrap()
            })
            .collect()
    };
    let (fused_vars, ref_vars) = (mk(), mk());
    let config = cfg(0.02, 0.05, Some(0.5));
    let mut fused = AdamW::new(
        fused_vars
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("p{i}"), v.clone()))
            .collect(),
        config,
    )
    .unwrap();
    let mut reference = CandleOpsAdamW::new(ref_vars.clone(), config).unwrap();
    for step in 0..4 {
        let grads: Vec<Vec<f32>> = fused_vars
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (0..v.elem_count())
                    .map(|k| (((k + step * 5 + i) % 13) as f32 - 6.0) / 10.0)
                    .collect()
            })
            .collect();
        let terms = |vars: &[Var]| -> Tensor {
            let t: Vec<(&Var, &[f32])> = vars
                .iter()
                .zip(&grads)
                .map(|(v, g)| (v, g.as_slice()))
                .collect();
            linear_loss(&t)
        };
        let a = fused
            .step(&terms(&fused_vars).backward().unwrap(), 0.02)
            .unwrap();
        let b = reference
            .step(&terms(&ref_vars).backward().unwrap(), 0.02)
            .unwrap();
        assert!(
            (a.grad_norm - b.grad_norm).abs() < 1e-5 && (a.clip_coef - b.clip_coef).abs() < 1e-7
        );
        for (fv, rv) in fused_vars.iter().zip(&ref_vars) {
            close(&vals(fv), &vals(rv), 1e-6, &format!("step {step}"));
        }
    }
}

#[test]
fn saved_state_resumes_bit_identically() {
    let grads_at = |step: usize| -> (Vec<f32>, Vec<f32>) {
        let a = (0..6)
            .map(|k| ((k * 3 + step) % 7) as f32 / 7.0 - 0.4)
            .collect();
        let b = (0..3)
            .map(|k| ((k + 2 * step) % 5) as f32 / 3.0 - 0.6)
            .collect();
        (a, b)
    };
    let make = |seed: f32| {
        let a = var(&[seed, 0.2, -0.3, 0.4, 0.5, -0.6], &[2, 3]);
        let b = Var::from_tensor(
            &Tensor::new(&[seed, 1.5, -2.5f32], &Device::Cpu)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap(),
        )
        .unwrap();
        let opt = AdamW::new(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            cfg(0.01, 0.1, Some(0.7)),
        )
        .unwrap();
        (a, b, opt)
    };
    let (a1, b1, mut run) = make(0.1);
    for step in 0..3 {
        let (ga, gb) = grads_at(step);
        // `b` misses a gradient once, so its own step count differs from the global one.
        let gb_opt = if step == 1 { None } else { Some(gb.as_slice()) };
        run.step_host(&[Some(&ga), gb_opt], 0.01).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    run.save_state(dir.path()).unwrap();

    let (a2, b2, mut resumed) = make(9.0);
    resumed.load_state(dir.path()).unwrap();
    assert_eq!(resumed.steps(), 3);
    assert_eq!(
        vals(&a2),
        vals(&a1),
        "master weights restored into the parameters"
    );
    assert_eq!(vals(&b2), vals(&b1));
    for step in 3..6 {
        let (ga, gb) = grads_at(step);
        let s1 = run.step_host(&[Some(&ga), Some(&gb)], 0.005).unwrap();
        let s2 = resumed.step_host(&[Some(&ga), Some(&gb)], 0.005).unwrap();
        assert_eq!(s1, s2);
        let bits = |v: &Var| vals(v).iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a1), bits(&a2), "step {step}: a");
        assert_eq!(bits(&b1), bits(&b2), "step {step}: b");
    }
}

#[test]
fn loading_a_mismatched_state_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = var(&[1.0, 2.0], &[2]);
    let mut opt = AdamW::new(vec![("a".into(), a.clone())], cfg(0.1, 0.0, None)).unwrap();
    opt.step_host(&[Some(&[1.0, 1.0])], 0.1).unwrap();
    opt.save_state(dir.path()).unwrap();

    let other = var(&[7.0, 7.0, 7.0], &[3]);
    let mut wrong_shape =
        AdamW::new(vec![("a".into(), other.clone())], cfg(0.1, 0.0, None)).unwrap();
    let err = wrong_shape.load_state(dir.path()).unwrap_err().to_string();
    assert!(err.contains("parameter 0 is `a` [2]"), "{err}");
    assert_eq!(vals(&other), vec![7.0, 7.0, 7.0]);

    let renamed = var(&[7.0, 7.0], &[2]);
    let mut wrong_name = AdamW::new(vec![("z".into(), renamed)], cfg(0.1, 0.0, None)).unwrap();
    assert!(wrong_name
        .load_state(dir.path())
        .unwrap_err()
        .to_string()
        .contains("`z`"));

    let missing = tempfile::tempdir().unwrap();
    let err = format!("{:#}", opt.load_state(missing.path()).unwrap_err());
    assert!(err.contains("adamw.json"), "{err}");
}

#[test]
fn bad_configuration_and_inputs_are_errors() {
    let p = var(&[1.0], &[1]);
    let bad = AdamWConfig {
        betas: (1.0, 0.999),
        ..AdamWConfig::default()
    };
    assert!(AdamW::new(vec![("p".into(), p.clone())], bad)
        .unwrap_err()
        .to_string()
        .contains("betas"));
    let dup = AdamW::new(
        vec![("p".into(), p.clone()), ("p".into(), p.clone())],
        AdamWConfig::default(),
    );
    assert!(dup.unwrap_err().to_string().contains("twice"));
    let mut opt = AdamW::new(vec![("p".into(), p)], AdamWConfig::default()).unwrap();
    let err = opt
        .step_host(&[Some(&[1.0, 2.0])], 1e-6)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gradient of `p` has 2 values"), "{err}");
    assert!(opt.step_host(&[Some(&[1.0])], f64::NAN).is_err());
}
