//! Sampling in tensor ops (the device-generic path) on the device named by
//! ONESHOT_TEST_DEVICE (default cpu) against the host sampler: the same tokens and the same
//! log-probabilities (1e-6 relative) for greedy, temperature, top-k and top-p, with each row
//! drawing from its own seeded stream.

use candle_core::{Device, Tensor};
use oneshot_model::device_sampling::{sample_rows, BLOCK};
use oneshot_model::sampling::{sample, SamplerConfig, SeqRng};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Row r's logits: a peaked, model-like distribution over `vocab` tokens.
fn logits(rows: usize, vocab: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows)
        .map(|_| {
            (0..vocab)
                .map(|_| {
                    let x: f32 = rng.gen_range(-1.0..1.0);
                    // A few tokens far above the rest, as after training.
                    if rng.gen_range(0.0..1.0) < 0.01 {
                        8.0 + 4.0 * x
                    } else {
                        3.0 * x
                    }
                })
                .collect()
        })
        .collect()
}

/// The draw `SeqRng::new(seed)` makes for its next token.
fn uniform_of(seed: u64, draw: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..draw).for_each(|_| {
        rng.gen::<f64>();
    });
    rng.gen::<f64>()
}

fn check(cfg: SamplerConfig, vocab: usize, steps: usize, what: &str) {
    let dev = oneshot_test_device::device();
    let rows = 6;
    let seeds: Vec<u64> = (0..rows as u64).map(|r| 1000 + r).collect();
    let mut rngs: Vec<SeqRng> = seeds.iter().map(|&s| SeqRng::new(s)).collect();
    for step in 0..steps {
        let host_rows = logits(rows, vocab, step as u64 + 7 * vocab as u64);
        let flat: Vec<f32> = host_rows.concat();
        let t = Tensor::from_vec(flat, (rows, vocab), &Device::Cpu)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let u: Vec<f64> = seeds.iter().map(|&s| uniform_of(s, step)).collect();
        let (toks, logps) = sample_rows(&t, &cfg, &u).unwrap();
        for r in 0..rows {
            let (tok, logp) = sample(&host_rows[r], &cfg, &mut rngs[r]);
            assert_eq!(toks[r], tok, "{what}: step {step} row {r}: token");
            let tol = 1e-6 * logp.abs().max(1.0);
            assert!(
                (logps[r] - logp).abs() <= tol,
                "{what}: step {step} row {r}: log-prob {} vs host {logp}",
                logps[r]
            );
        }
    }
}

fn cfg(temperature: f64, top_p: f64, top_k: usize) -> SamplerConfig {
    SamplerConfig {
        temperature,
        top_p,
        top_k,
    }
}

#[test]
fn greedy_and_full_distribution_match_the_host() {
    check(SamplerConfig::greedy(), 3 * BLOCK + 17, 3, "greedy");
    // Several blocks and a ragged last one, at the paper's rollout temperature.
    check(cfg(0.6, 1.0, 0), 3 * BLOCK + 17, 6, "t=0.6");
    check(cfg(1.0, 1.0, 0), 100, 6, "t=1, one block");
}

#[test]
fn top_k_and_top_p_match_the_host() {
    check(cfg(0.8, 1.0, 20), 2 * BLOCK + 5, 5, "top-k 20");
    check(cfg(1.0, 0.9, 0), 2 * BLOCK + 5, 5, "top-p 0.9");
    check(
        cfg(0.7, 0.95, 40),
        2 * BLOCK + 5,
        5,
        "top-k 40 + top-p 0.95",
    );
    // A nucleus wider than the candidates: the rows finish on the host, still the same token.
    check(cfg(3.0, 0.999, 0), 4 * BLOCK, 3, "wide nucleus");
}

#[test]
fn draws_spread_over_the_distribution() {
    // Many draws from one row at t=1: the sampled frequencies follow the probabilities (the
    // test would fail if the device draw ignored u or picked by a wrong running sum).
    let dev = oneshot_test_device::device();
    let probs = [0.5f32, 0.3, 0.15, 0.05];
    let row: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
    let n = 4000;
    let t = Tensor::from_vec(row.repeat(n), (n, 4), &Device::Cpu)
        .unwrap()
        .to_device(&dev)
        .unwrap();
    let u: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect();
    let (toks, _) = sample_rows(&t, &cfg(1.0, 1.0, 0), &u).unwrap();
    for (k, p) in probs.iter().enumerate() {
        let freq = toks.iter().filter(|&&x| x == k as u32).count() as f32 / n as f32;
        assert!((freq - p).abs() < 2e-3, "token {k}: {freq} vs {p}");
    }
    let err = sample_rows(&t, &cfg(1.0, 1.0, 0), &u[..3]).unwrap_err();
    assert!(err.to_string().contains("draws"), "{err}");
}
