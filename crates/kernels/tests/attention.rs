//! Fused causal attention vs the materialised reference, plus finite differences.

mod common;

use candle_core::{Device, Tensor, Var};
use common::*;
use oneshot_kernels as k;
use oneshot_kernels::reference as r;

fn compare(
    what: &str,
    dims: (usize, usize, usize, usize, usize, usize),
    starts: Option<&[usize]>,
    seed: u64,
) {
    let (b, hq, hkv, t, s, d) = dims;
    let mut rng = rng(seed);
    // q is presented non-contiguously, as after the usual [b, t, h, d] -> [b, h, t, d] transpose.
    let qs = var(&mut rng, &[b, t, hq, d], 1.5);
    let q = qs.as_tensor().transpose(1, 2).unwrap();
    let kv = var(&mut rng, &[b, hkv, s, d], 1.5);
    let vv = var(&mut rng, &[b, hkv, s, d], 1.0);
    let scale = 1.0 / (d as f64).sqrt();
    let got = k::causal_attention(&q, kv.as_tensor(), vv.as_tensor(), starts, scale).unwrap();
    let want = r::causal_attention(&q, kv.as_tensor(), vv.as_tensor(), starts, scale).unwrap();
    assert_close(&got, &want, 1e-5, &format!("{what}: output"));
    let gg = probe_loss(&got, 1).unwrap().backward().unwrap();
    let gw = probe_loss(&want, 1).unwrap().backward().unwrap();
    for (name, v) in [("dq", &qs), ("dk", &kv), ("dv", &vv)] {
        let a = gg
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no fused {name}"));
        let b = gw.get(v.as_tensor()).unwrap();
        assert!(max_abs(a) > 0.0, "{what}: {name} is zero");
        assert_close(a, b, 1e-4, &format!("{what}: {name}"));
    }
}

#[test]
fn matches_reference_multi_head() {
    compare("mha", (2, 3, 3, 5, 5, 8), None, 1);
}

#[test]
fn matches_reference_grouped_kv_and_long_rows() {
    // 4 query heads share 2 kv heads; 150 keys span several online-softmax tiles.
    compare("gqa", (1, 4, 2, 150, 150, 16), None, 2);
}

#[test]
fn matches_reference_with_cached_prefix_and_left_padding() {
    // s > t: the queries are the last 4 positions of 9; batch row 1 has 3 padded keys, batch
    // row 2 has 7 (so its first two queries see nothing and must output zeros).
    compare("prefix+padding", (3, 2, 1, 4, 9, 6), Some(&[0, 3, 7]), 3);
    let (b, t, s, d) = (1, 3, 3, 4);
    let mut rng = rng(4);
    let q = uniform(&mut rng, &[b, 1, t, d], 1.0);
    let kk = uniform(&mut rng, &[b, 1, s, d], 1.0);
    let v = uniform(&mut rng, &[b, 1, s, d], 1.0);
    let out = flat(&k::causal_attention(&q, &kk, &v, Some(&[2]), 0.5).unwrap());
    assert!(
        out[..2 * d].iter().all(|&x| x == 0.0),
        "padding queries must output zeros"
    );
    // The last query sees only key 2: its output is exactly v[2].
    let v2 = flat(&v)[2 * d..].to_vec();
    for (a, b) in out[2 * d..].iter().zip(&v2) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn finite_differences() {
    let mut rng = rng(5);
    let (b, h, t, d) = (1, 2, 4, 3);
    let base = [
        uniform(&mut rng, &[b, h, t, d], 1.0),
        uniform(&mut rng, &[b, 1, t, d], 1.0),
        uniform(&mut rng, &[b, 1, t, d], 1.0),
    ];
    let loss = |x: &[Tensor]| {
        probe_loss(
            &k::causal_attention(&x[0], &x[1], &x[2], Some(&[1]), 0.7).unwrap(),
            2,
        )
        .unwrap()
    };
    let vars: Vec<Var> = base.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let views: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = loss(&views).backward().unwrap();
    for which in 0..3 {
        let analytic = flat(grads.get(vars[which].as_tensor()).unwrap());
        let data = flat(&base[which]);
        for c in (0..data.len()).step_by(5) {
            let eval = |delta: f32| {
                let mut x = base.clone();
                let mut dd = data.clone();
                dd[c] += delta;
                x[which] = Tensor::from_vec(dd, base[which].dims(), &Device::Cpu).unwrap();
                loss(&x).to_scalar::<f32>().unwrap() as f64
            };
            let numeric = ((eval(1e-2) - eval(-1e-2)) / 2e-2) as f32;
            assert!(
                (numeric - analytic[c]).abs() <= 2e-3 * analytic[c].abs().max(0.1) + 1e-4,
                "input {which} coord {c}: fd {numeric} vs analytic {}",
                analytic[c]
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let dev = Device::Cpu;
    let q = Tensor::zeros((1, 3, 2, 4), candle_core::DType::F32, &dev).unwrap();
    let kv = Tensor::zeros((1, 2, 2, 4), candle_core::DType::F32, &dev).unwrap();
    let e = k::causal_attention(&q, &kv, &kv, None, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple"), "{e}");
    let kv = Tensor::zeros((1, 1, 2, 4), candle_core::DType::F32, &dev).unwrap();
    let e = k::causal_attention(&q, &kv, &kv, Some(&[0, 0]), 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("key_start"), "{e}");
}
