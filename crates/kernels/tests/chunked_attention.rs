//! Chunked attention (the device-generic path) against the materialised reference, values and
//! gradients, on the device named by ONESHOT_TEST_DEVICE (default cpu); and on the CPU against
//! the fused kernel it stands in for.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use oneshot_kernels::chunked_attention as chunked;
use oneshot_kernels::reference as r;

/// Runs both on the test device with `chunk` query rows per chunk and compares outputs and the
/// gradients of a probe loss w.r.t. q, k and v.
fn compare(
    what: &str,
    dims: (usize, usize, usize, usize, usize, usize),
    starts: Option<&[usize]>,
    chunk: usize,
    seed: u64,
) {
    let dev = oneshot_test_device::device();
    let (b, hq, hkv, t, s, d) = dims;
    let mut rng = rng(seed);
    let on = |v: Var| Var::from_tensor(&v.as_tensor().to_device(&dev).unwrap()).unwrap();
    let qs = on(var(&mut rng, &[b, t, hq, d], 1.5));
    let q = qs.as_tensor().transpose(1, 2).unwrap();
    let kv = on(var(&mut rng, &[b, hkv, s, d], 1.5));
    let vv = on(var(&mut rng, &[b, hkv, s, d], 1.0));
    let scale = 1.0 / (d as f64).sqrt();
    let got = chunked::causal_attention(&q, kv.as_tensor(), vv.as_tensor(), starts, scale, chunk)
        .unwrap();
    let want = r::causal_attention(&q, kv.as_tensor(), vv.as_tensor(), starts, scale).unwrap();
    assert_close(&got, &want, 1e-5, &format!("{what}: output"));
    let gg = probe_loss(&got, 1).unwrap().backward().unwrap();
    let gw = probe_loss(&want, 1).unwrap().backward().unwrap();
    for (name, v) in [("dq", &qs), ("dk", &kv), ("dv", &vv)] {
        let a = gg
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no chunked {name}"));
        let b = gw.get(v.as_tensor()).unwrap();
        assert!(max_abs(a) > 0.0, "{what}: {name} is zero");
        assert_close(a, b, 1e-4, &format!("{what}: {name}"));
    }
}

#[test]
fn matches_reference_in_one_chunk_and_in_many() {
    compare("one chunk", (2, 3, 3, 5, 5, 8), None, 0, 1);
    // 4 query heads share 2 kv heads; chunks of 7 leave a short last chunk.
    compare("gqa chunks", (1, 4, 2, 40, 40, 16), None, 7, 2);
    compare("row chunks", (1, 2, 1, 9, 9, 4), None, 1, 3);
}

#[test]
fn matches_reference_with_cached_prefix_and_left_padding() {
    // Queries are the last 4 of 9 positions; row 2's first two queries see no key.
    compare("prefix+padding", (3, 2, 1, 4, 9, 6), Some(&[0, 3, 7]), 3, 4);
    let dev = oneshot_test_device::device();
    let mut rng = rng(5);
    let q = uniform(&mut rng, &[1, 1, 3, 4], 1.0)
        .to_device(&dev)
        .unwrap();
    let kk = uniform(&mut rng, &[1, 1, 3, 4], 1.0)
        .to_device(&dev)
        .unwrap();
    let v = uniform(&mut rng, &[1, 1, 3, 4], 1.0)
        .to_device(&dev)
        .unwrap();
    let out = flat(&chunked::causal_attention(&q, &kk, &v, Some(&[2]), 0.5, 1).unwrap());
    assert!(
        out[..8].iter().all(|&x| x == 0.0),
        "padding queries output zeros"
    );
    let v2 = flat(&v)[8..].to_vec();
    for (a, b) in out[8..].iter().zip(&v2) {
        assert!((a - b).abs() < 1e-6, "the last query sees only key 2");
    }
}

#[test]
fn bf16_inputs_keep_their_dtype_and_match_the_f32_result() {
    let dev = oneshot_test_device::device();
    let mut rng = rng(6);
    let x: Vec<Tensor> = [[1, 4, 6, 8], [1, 2, 6, 8], [1, 2, 6, 8]]
        .iter()
        .map(|d| uniform(&mut rng, d, 1.0).to_device(&dev).unwrap())
        .collect();
    let half: Vec<Tensor> = x.iter().map(|t| t.to_dtype(DType::BF16).unwrap()).collect();
    let got = chunked::causal_attention(&half[0], &half[1], &half[2], None, 0.3, 2).unwrap();
    assert_eq!(got.dtype(), DType::BF16);
    let rounded: Vec<Tensor> = half
        .iter()
        .map(|t| t.to_dtype(DType::F32).unwrap())
        .collect();
    let want = r::causal_attention(&rounded[0], &rounded[1], &rounded[2], None, 0.3).unwrap();
    // One bf16 rounding of the output (relative 2^-8).
    assert_close(&got, &want, 4e-3, "bf16 output");
}

/// The fused CPU kernel and the chunked composition agree: the generic path on the CPU
/// computes what the host path does.
#[test]
fn agrees_with_the_fused_cpu_kernel() {
    let mut rng = rng(7);
    let (b, hq, hkv, t, s, d) = (2, 4, 2, 33, 40, 8);
    let qv = var(&mut rng, &[b, hq, t, d], 1.5);
    let kv = var(&mut rng, &[b, hkv, s, d], 1.5);
    let vv = var(&mut rng, &[b, hkv, s, d], 1.0);
    let (q, k, v) = (qv.as_tensor(), kv.as_tensor(), vv.as_tensor());
    let starts = Some(&[0usize, 5][..]);
    let fused = oneshot_kernels::causal_attention(q, k, v, starts, 0.35).unwrap();
    let gen = chunked::causal_attention(q, k, v, starts, 0.35, 8).unwrap();
    assert_close(&gen, &fused, 1e-5, "output");
    let gf = probe_loss(&fused, 3).unwrap().backward().unwrap();
    let gc = probe_loss(&gen, 3).unwrap().backward().unwrap();
    for (name, x) in [("dq", &qv), ("dk", &kv), ("dv", &vv)] {
        let (a, b) = (
            gc.get(x.as_tensor()).unwrap(),
            gf.get(x.as_tensor()).unwrap(),
        );
        assert_close(a, b, 1e-4, name);
    }
    assert!(q.device().same_device(&Device::Cpu));
}

#[test]
fn default_chunks_bound_the_scores_of_long_responses() {
    // A 3,072-token response with 12 heads: the scores of one chunk, not of the whole response.
    let c = chunked::default_chunk(1, 12, 3_072 + 512);
    assert!((1..3_072).contains(&c), "{c}");
    assert!(12 * c * (3_072 + 512) <= 64 << 20);
    assert_eq!(chunked::default_chunk(1, 1, 4), chunked::DEFAULT_CHUNK);
    assert_eq!(chunked::default_chunk(64, 64, 1 << 20), 1);
}

/// The masks are built once per batch: the layers of a forward (same sizes and `key_start`)
/// and the backward's recompute reuse them, with the same result as a fresh build; another
/// `key_start` builds its own.
#[test]
fn masks_are_built_once_per_batch() {
    let dev = oneshot_test_device::device();
    let mut rng = rng(11);
    let (b, hq, hkv, t, s, d) = (2, 4, 2, 9, 12, 8);
    let starts = Some(&[0usize, 4][..]);
    let k = var(&mut rng, &[b, hkv, s, d], 1.0)
        .as_tensor()
        .to_device(&dev)
        .unwrap();
    let v = var(&mut rng, &[b, hkv, s, d], 1.0)
        .as_tensor()
        .to_device(&dev)
        .unwrap();
    let qs: Vec<Var> = (0..3)
        .map(|_| {
            Var::from_tensor(
                &var(&mut rng, &[b, hq, t, d], 1.0)
                    .as_tensor()
                    .to_device(&dev)
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let before = chunked::masks_built();
    let outs: Vec<Tensor> = qs
        .iter()
        .map(|q| chunked::causal_attention(q.as_tensor(), &k, &v, starts, 0.3, 4).unwrap())
        .collect();
    let loss = outs
        .iter()
        .try_fold(Tensor::zeros((), DType::F32, &dev).unwrap(), |acc, o| {
            acc + probe_loss(o, 5).unwrap()
        });
    let grads = loss.unwrap().backward().unwrap();
    assert_eq!(
        chunked::masks_built(),
        before + 1,
        "three layers and their backward"
    );
    for (q, out) in qs.iter().zip(&outs) {
        let want = r::causal_attention(q.as_tensor(), &k, &v, starts, 0.3).unwrap();
        assert_close(out, &want, 1e-5, "reused masks");
        assert!(grads.get(q.as_tensor()).is_some());
    }
    chunked::causal_attention(qs[0].as_tensor(), &k, &v, Some(&[1, 4]), 0.3, 4).unwrap();
    assert_eq!(chunked::masks_built(), before + 2, "another key_start");
}
