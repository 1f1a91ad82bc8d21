//! Choosing the next token from one row of logits: greedy, or temperature / top-k / top-p
//! sampling driven by one uniform draw from the sequence's own random stream.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    /// Nucleus mass in (0, 1]; 1 disables.
    pub top_p: f64,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// A sequence's random stream: seeded per sequence, so its draws do not depend on which other
/// sequences share the batch.
pub struct SeqRng(ChaCha8Rng);

impl SeqRng {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    fn uniform(&mut self) -> f64 {
        self.0.gen::<f64>()
    }
}

/// The chosen token and its log-probability under `softmax(logits / T)` (T = 1 for greedy),
/// i.e. the same quantity the trainer recomputes; top-k/top-p truncation is not folded in.
pub fn sample(logits: &[f32], cfg: &SamplerConfig, rng: &mut SeqRng) -> (u32, f32) {
    let t = if cfg.is_greedy() {
        1.0
    } else {
        cfg.temperature
    };
    let z: Vec<f64> = logits.iter().map(|&x| x as f64 / t).collect();
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_norm = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    if cfg.is_greedy() {
        // First index of the maximum, as torch.argmax.
        let tok = z.iter().position(|&v| v == max).unwrap_or(0);
        // The stream still advances so a row's draws stay aligned with its step count.
        rng.uniform();
        return (tok as u32, (z[tok] - log_norm) as f32);
    }
    let u = rng.uniform();
    let tok = if cfg.top_k == 0 && cfg.top_p >= 1.0 {
        inverse_cdf(
            z.iter()
                .enumerate()
                .map(|(i, &v)| (i, (v - log_norm).exp())),
            u,
        )
    } else {
        let mut order: Vec<usize> = (0..z.len()).collect();
        // Descending by logit, ties by index, so the kept set is well defined.
        order.sort_unstable_by(|&a, &b| {
            z[b].partial_cmp(&z[a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        if cfg.top_k > 0 {
            order.truncate(cfg.top_k);
        }
        let probs: Vec<f64> = order.iter().map(|&i| (z[i] - log_norm).exp()).collect();
        let mut kept = probs.len();
        if cfg.top_p < 1.0 {
            // Smallest prefix whose mass reaches top_p (at least one token).
            let mut mass = 0.0;
            for (k, p) in probs.iter().enumerate() {
                mass += p;
                if mass >= cfg.top_p {
                    kept = k + 1;
                    break;
                }
            }
        }
        let total: f64 = probs[..kept].iter().sum();
        inverse_cdf(
            order[..kept]
                .iter()
                .zip(&probs[..kept])
                .map(|(&i, &p)| (i, p / total)),
            u,
        )
    };
    (tok as u32, (z[tok] - log_norm) as f32)
}

/// The first item whose cumulative probability exceeds u (the last one if rounding leaves u
/// above the total).
fn inverse_cdf(items: impl Iterator<Item = (usize, f64)>, u: f64) -> usize {
    let mut acc = 0.0;
    let mut last = 0;
    for (i, p) in items {
        if p <= 0.0 {
            continue;
        }
        acc += p;
        last = i;
        if u < acc {
            return i;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum_and_reports_its_logprob() {
        let (tok, lp) = sample(
            &[0.0, 2.0, 2.0, 1.0],
            &SamplerConfig::greedy(),
            &mut SeqRng::new(0),
        );
        assert_eq!(tok, 1);
        let norm = (1.0f64 + 2.0 * 2f64.exp() + 1f64.exp()).ln();
        assert!((lp as f64 - (2.0 - norm)).abs() < 1e-6);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [3.0, 2.9, 0.0, -1.0, 2.8];
        let k2 = SamplerConfig {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 2,
        };
        let p = SamplerConfig {
            temperature: 1.0,
            top_p: 0.5,
            top_k: 0,
        };
        let mut rng = SeqRng::new(7);
        for _ in 0..200 {
            let (t, _) = sample(&logits, &k2, &mut rng);
            assert!(t == 0 || t == 1, "top-k 2 gave {t}");
            let (t, _) = sample(&logits, &p, &mut rng);
            // p(0) ~ 0.36, p(0)+p(1) ~ 0.69 >= 0.5: only tokens 0 and 1 are kept.
            assert!(t == 0 || t == 1, "top-p 0.5 gave {t}");
        }
    }

    #[test]
    fn sampling_follows_the_tempered_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 1/4, 3/4 at T = 1
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        };
        let mut rng = SeqRng::new(1);
        let n = 4000;
        let ones = (0..n)
            .filter(|_| sample(&logits, &cfg, &mut rng).0 == 1)
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
        // Higher temperature flattens: T = 1e6 makes it ~uniform.
        let hot = SamplerConfig {
            temperature: 1e6,
            ..cfg
        };
        let ones = (0..n)
            .filter(|_| sample(&logits, &hot, &mut rng).0 == 1)
            .count();
        assert!((ones as f64 / n as f64 - 0.5).abs() < 0.04);
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let cfg = SamplerConfig {
            temperature: 0.8,
            top_p: 0.9,
            top_k: 20,
        };
        let a: Vec<u32> = {
            let mut r = SeqRng::new(5);
            (0..20).map(|_| sample(&logits, &cfg, &mut r).0).collect()
        };
        let b: Vec<u32> = {
            let mut r = SeqRng::new(5);
            (0..20).map(|_| sample(&logits, &cfg, &mut r).0).collect()
        };
        let c: Vec<u32> = {
            let mut r = SeqRng::new(6);
            (0..20).map(|_| sample(&logits, &cfg, &mut r).0).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
