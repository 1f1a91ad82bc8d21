//! The device-generic optimiser path (tensor ops on the parameters' device, here the device
//! named by ONESHOT_TEST_DEVICE, default cpu) against the host path on the CPU: the same
//! parameters, statistics and saved state after several steps of single backward passes,
//! accumulated micro-batches, clipping, a parameter that misses a gradient, and bf16
//! parameters; and a resume that crosses paths.

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use oneshot_optim::{AdamW, AdamWConfig, GradAccumulator, StepPath};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const RTOL: f32 = 1e-6;

fn values(v: &Var) -> Vec<f32> {
    v.as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let tol = RTOL * b.abs().max(1e-3);
        assert!((a - b).abs() <= tol, "{what}[{i}]: generic {a} vs host {b}");
    }
}

/// Named parameters (shapes of a tiny layer stack), the same initial values on `dev`.
fn params(dev: &Device, dtype: DType) -> Vec<(String, Var)> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    [
        ("embed", vec![7, 5]),
        ("w1", vec![5, 5]),
        ("bias", vec![5]),
        ("head", vec![3, 5]),
    ]
    .into_iter()
    .map(|(name, shape)| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let t = Tensor::from_vec(data, shape, dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        (name.to_string(), Var::from_tensor(&t).unwrap())
    })
    .collect()
}

/// A loss whose gradient differs per parameter and step: `sum(c * p^2 + d * p)` with random
/// coefficients drawn from `seed`; `skip` names a parameter left out (it gets no gradient).
fn grads(params: &[(String, Var)], seed: u64, scale: f32, skip: Option<&str>) -> GradStore {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut loss: Option<Tensor> = None;
    for (name, v) in params {
        let n = v.elem_count();
        let c: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..scale)).collect();
        let d: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
        if skip == Some(name.as_str()) {
            continue;
        }
        let dev = v.device();
        let c = Tensor::from_vec(c, v.shape(), dev).unwrap();
        let d = Tensor::from_vec(d, v.shape(), dev).unwrap();
        let p = v.as_tensor().to_dtype(DType::F32).unwrap();
        let term = ((p.sqr().unwrap() * c).unwrap() + (p * d).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => (l + term).unwrap(),
        });
    }
    loss.unwrap().backward().unwrap()
}

struct Run {
    params: Vec<(String, Var)>,
    opt: AdamW,
}

impl Run {
    fn new(dev: &Device, dtype: DType, path: StepPath, cfg: AdamWConfig) -> Self {
        let params = params(dev, dtype);
        let opt = AdamW::with_path(params.clone(), cfg, path).unwrap();
        assert_eq!(opt.path(), path);
        Self { params, opt }
    }

    /// The schedule both paths run: plain steps, accumulated micro-batches (scaled), a step
    /// where `bias` has no gradient, large gradients that clip.
    fn step(&mut self, k: u64) -> oneshot_optim::StepStats {
        let lr = 0.01 * (1.0 + k as f64 * 0.1);
        match k % 4 {
            0 => self
                .opt
                .step(&grads(&self.params, k, 1.0, None), lr)
                .unwrap(),
            1 => {
                let mut acc = self.opt.accumulator();
                for micro in 0..3 {
                    let g = grads(&self.params, 100 * k + micro, 1.0, None);
                    acc.add_scaled(&g, 0.5).unwrap();
                }
                self.opt.step_accumulated(&acc, lr).unwrap()
            }
            2 => {
                let g = grads(&self.params, k, 1.0, Some("bias"));
                self.opt.step(&g, lr).unwrap()
            }
            _ => self
                .opt
                .step(&grads(&self.params, k, 50.0, None), lr)
                .unwrap(),
        }
    }
}

fn config() -> AdamWConfig {
    AdamWConfig {
        lr: 0.01,
        betas: (0.9, 0.99),
        eps: 1e-8,
        weight_decay: 0.1,
        max_grad_norm: Some(2.0),
    }
}

fn same_params(a: &Run, b: &Run, what: &str) {
    for ((name, va), (_, vb)) in a.params.iter().zip(&b.params) {
        close(&values(va), &values(vb), &format!("{what}: {name}"));
    }
}

#[test]
fn generic_path_matches_the_host_path_step_for_step() {
    let dev = oneshot_test_device::device();
    for dtype in [DType::F32, DType::BF16] {
        let mut host = Run::new(&Device::Cpu, dtype, StepPath::Host, config());
        let mut generic = Run::new(&dev, dtype, StepPath::Generic, config());
        let mut clipped = false;
        for k in 0..8 {
            let sh = host.step(k);
            let sg = generic.step(k);
            assert_eq!(sh.step, sg.step);
            let rel = ((sh.grad_norm - sg.grad_norm) / sh.grad_norm).abs();
            assert!(
                rel < 1e-9,
                "step {k}: grad norm {} vs {}",
                sg.grad_norm,
                sh.grad_norm
            );
            assert!((sh.clip_coef - sg.clip_coef).abs() < 1e-9);
            clipped |= sh.clip_coef < 1.0;
            same_params(&generic, &host, &format!("{dtype:?} step {k}"));
        }
        assert!(clipped, "the schedule must exercise clipping");
        // The parameters moved: the comparison is not of two untouched copies.
        let start = params(&Device::Cpu, dtype);
        assert!(values(&host.params[0].1) != values(&start[0].1));
    }
}

#[test]
fn accumulated_gradients_match_on_both_paths() {
    let dev = oneshot_test_device::device();
    let host = Run::new(&Device::Cpu, DType::F32, StepPath::Host, config());
    let generic = Run::new(&dev, DType::F32, StepPath::Generic, config());
    let (mut acc_h, mut acc_g) = (host.opt.accumulator(), generic.opt.accumulator());
    assert_eq!(acc_g.path(), StepPath::Generic);
    for micro in 0..3 {
        let skip = (micro == 1).then_some("head");
        acc_h
            .add_scaled(&grads(&host.params, micro, 1.0, skip), 0.25)
            .unwrap();
        acc_g
            .add_scaled(&grads(&generic.params, micro, 1.0, skip), 0.25)
            .unwrap();
    }
    for (name, _) in &host.params {
        let h = acc_h.grad(name).unwrap().unwrap();
        let g = acc_g.grad(name).unwrap().unwrap();
        close(&g, &h, &format!("summed gradient of {name}"));
        assert!(h.iter().any(|&x| x != 0.0));
    }
    acc_g.clear();
    assert_eq!(acc_g.grad("head").unwrap(), None);
    assert_eq!(acc_g.passes(), 0);
    // An accumulator of the other path is refused, not silently converted.
    let mut g_opt = generic.opt;
    let host_acc = GradAccumulator::with_path(generic.params.clone(), StepPath::Host).unwrap();
    let err = g_opt
        .step_accumulated(&host_acc, 0.1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("path"), "{err}");
}

#[test]
fn non_finite_gradients_are_refused_naming_the_parameter() {
    let dev = oneshot_test_device::device();
    let mut run = Run::new(&dev, DType::F32, StepPath::Generic, config());
    let before = values(&run.params[1].1);
    let grads: Vec<Option<Vec<f32>>> = run
        .params
        .iter()
        .map(|(name, v)| {
            let mut g = vec![0.1f32; v.elem_count()];
            if name == "w1" {
                g[3] = f32::NAN;
            }
            Some(g)
        })
        .collect();
    let views: Vec<Option<&[f32]>> = grads.iter().map(|g| g.as_deref()).collect();
    let err = run.opt.step_host(&views, 0.1).unwrap_err().to_string();
    assert!(err.contains("`w1`") && err.contains("non-finite"), "{err}");
    assert_eq!(
        values(&run.params[1].1),
        before,
        "a refused step changes nothing"
    );
    assert_eq!(run.opt.steps(), 0);
}

#[test]
fn state_saved_on_one_path_resumes_bit_identically_on_the_other() {
    let dev = oneshot_test_device::device();
    let dir = tempfile::tempdir().unwrap();
    let mut generic = Run::new(&dev, DType::F32, StepPath::Generic, config());
    let mut host = Run::new(&Device::Cpu, DType::F32, StepPath::Host, config());
    for k in 0..3 {
        generic.step(k);
        host.step(k);
    }
    generic.opt.save_state(&dir.path().join("g")).unwrap();
    host.opt.save_state(&dir.path().join("h")).unwrap();
    // The generic path resumes from the host's state and vice versa.
    let mut g_from_h = Run::new(&dev, DType::F32, StepPath::Generic, config());
    g_from_h.opt.load_state(&dir.path().join("h")).unwrap();
    let mut h_from_g = Run::new(&Device::Cpu, DType::F32, StepPath::Host, config());
    h_from_g.opt.load_state(&dir.path().join("g")).unwrap();
    same_params(&g_from_h, &host, "generic loaded from host");
    for k in 3..6 {
        generic.step(k);
        host.step(k);
        g_from_h.step(k);
        h_from_g.step(k);
    }
    same_params(&g_from_h, &host, "generic resumed from host state");
    same_params(&h_from_g, &generic, "host resumed from generic state");
    // On one device the generic path resumes from its own state bit for bit.
    let mut g_again = Run::new(&dev, DType::F32, StepPath::Generic, config());
    let mut g_ref = Run::new(&dev, DType::F32, StepPath::Generic, config());
    for k in 0..3 {
        g_ref.step(k);
    }
    g_ref.opt.save_state(&dir.path().join("r")).unwrap();
    g_again.opt.load_state(&dir.path().join("r")).unwrap();
    for k in 3..5 {
        g_ref.step(k);
        g_again.step(k);
    }
    for ((name, a), (_, b)) in g_again.params.iter().zip(&g_ref.params) {
        assert_eq!(values(a), values(b), "{name}: resume is bit-identical");
    }
}
