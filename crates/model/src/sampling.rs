//! Choosing the next token from one row of logits: greedy, or temperature / top-k / top-p
//! sampling driven by one uniform draw from the sequence's own random stream.
use crate::detmath;
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
#[derive(Clone)]
pub struct SeqRng(ChaCha8Rng);

impl SeqRng {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The next uniform draw in [0, 1): the one [`sample`] takes for this sequence's next
    /// token, so a sampler elsewhere (the device's, [`crate::device_sampling`]) makes the same
    /// choice from the same stream.
    pub fn uniform(&mut self) -> f64 {
        self.0.gen::<f64>()
    }
}

/// Entries per block of the running sums: the inverse-CDF walk skips whole blocks by their
/// sums and rescans one.
const BLOCK: usize = 512;
/// Independent accumulators per block sum (vectorisable, fixed order).
const LANES: usize = 8;
/// First candidate count of the top-p search; it grows 4x until the nucleus fits.
const FIRST_CANDIDATES: usize = 64;

/// The chosen token and its log-probability under `softmax(logits * (1 / T))` (T = 1 for
/// greedy), the quantity the trainer recomputes; top-k/top-p truncation is not folded in.
///
/// Works in f32 on the logits in place (no copy of the vocabulary row): one pass for the
/// maximum, one for the block sums of `exp(z - max)`; the draw walks the block sums and
/// rescans one block; top-k and top-p select their candidates with a bounded heap. Every
/// operation is plain IEEE arithmetic in a fixed order with `exp`/`ln` from [`crate::detmath`],
/// so the same logits give the same draw on every CPU.
pub fn sample(logits: &[f32], cfg: &SamplerConfig, rng: &mut SeqRng) -> (u32, f32) {
    let inv_t = if cfg.is_greedy() {
        1.0
    } else {
        (1.0 / cfg.temperature) as f32
    };
    let (argmax, max_logit) = argmax(logits);
    let z_max = max_logit * inv_t;
    let blocks = block_sums(logits, inv_t, z_max);
    let total: f64 = blocks.iter().map(|&b| b as f64).sum();
    let log_norm = z_max as f64 + detmath::ln(total);
    let logprob = |tok: usize| (logits[tok] as f64 * inv_t as f64 - log_norm) as f32;
    // Greedy still draws, so a row's stream stays aligned with its step count.
    let u = rng.uniform();
    if cfg.is_greedy() {
        return (argmax as u32, logprob(argmax));
    }
    let tok = if cfg.top_k == 0 && cfg.top_p >= 1.0 {
        draw_full(logits, inv_t, z_max, &blocks, u * total)
    } else {
        draw_truncated(logits, inv_t, z_max, total, cfg, u)
    };
    (tok as u32, logprob(tok))
}

oneshot_kernels::multiversion! {
    /// First index of the largest logit (as torch.argmax) and that logit; NaNs are never
    /// chosen. Two passes that vectorise: the largest value by lanes (exact: a maximum does
    /// not depend on the order), then the first entry equal to it (-0.0 == 0.0, so the first
    /// of equal zeros, as a strict `>` scan finds).
    fn argmax(logits: &[f32]) -> (usize, f32) {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let chunks = logits.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for l in 0..LANES {
                lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
            }
        }
        let max = lanes
            .iter()
            .chain(tail)
            .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
        if max == f32::NEG_INFINITY {
            return (0, f32::NEG_INFINITY);
        }
        let first_block = logits
            .chunks(BLOCK)
            .position(|b| b.iter().fold(false, |hit, &x| hit | (x == max)))
            .expect("the maximum is an entry");
        let at = first_block * BLOCK
            + logits[first_block * BLOCK..]
                .iter()
                .position(|&x| x == max)
                .expect("the block holds the maximum");
        (at, logits[at])
    }
}

oneshot_kernels::multiversion! {
    /// `sum exp(x * inv_t - z_max)` over each block of [`BLOCK`] logits.
    ///
    /// Plain loops and `push`, not an iterator chain ending in `collect`: `collect` hands the
    /// loop body to a generic function that is compiled outside the AVX2 build, which would
    /// then run the portable code.
    fn block_sums(logits: &[f32], inv_t: f32, z_max: f32) -> Vec<f32> {
        let mut sums = Vec::with_capacity(logits.len().div_ceil(BLOCK));
        for block in logits.chunks(BLOCK) {
            let mut acc = [0.0f32; LANES];
            let lanes = block.chunks_exact(LANES);
            let rest = lanes.remainder();
            for c in lanes {
                for l in 0..LANES {
                    acc[l] += detmath::exp(c[l] * inv_t - z_max);
                }
            }
            let mut tail = 0.0f32;
            for &x in rest {
                tail += detmath::exp(x * inv_t - z_max);
            }
            let mut sum = 0.0f32;
            for a in acc {
                sum += a;
            }
            sums.push(sum + tail);
        }
        sums
    }
}

/// The token at which the running sum of `exp(z - z_max)` first exceeds `target`, walking the
/// block sums then one block; rounding that leaves `target` beyond the sums picks the last
/// token with non-zero weight.
fn draw_full(logits: &[f32], inv_t: f32, z_max: f32, blocks: &[f32], target: f64) -> usize {
    let mut before = 0.0f64;
    let mut last_block = 0;
    for (b, &s) in blocks.iter().enumerate() {
        if s <= 0.0 {
            continue;
        }
        last_block = b;
        if before + s as f64 > target {
            break;
        }
        before += s as f64;
    }
    let offset = last_block * BLOCK;
    let block = &logits[offset..(offset + BLOCK).min(logits.len())];
    let mut acc = before;
    let mut last = offset;
    for (i, &x) in block.iter().enumerate() {
        let p = detmath::exp(x * inv_t - z_max);
        if p <= 0.0 {
            continue;
        }
        acc += p as f64;
        last = offset + i;
        if target < acc {
            break;
        }
    }
    last
}

/// Top-k / top-p: the candidates in descending order of logit (ties by index), grown until
/// they hold the top-k set or the nucleus, then the draw over the kept ones renormalised.
fn draw_truncated(
    logits: &[f32],
    inv_t: f32,
    z_max: f32,
    total: f64,
    cfg: &SamplerConfig,
    u: f64,
) -> usize {
    let limit = if cfg.top_k > 0 {
        cfg.top_k.min(logits.len())
    } else {
        logits.len()
    };
    let mut want = if cfg.top_p < 1.0 {
        FIRST_CANDIDATES.min(limit)
    } else {
        limit
    };
    loop {
        let order = top_candidates(logits, want);
        let probs: Vec<f64> = order
            .iter()
            .map(|&i| detmath::exp(logits[i] * inv_t - z_max) as f64 / total)
            .collect();
        let mut kept = None;
        if cfg.top_p < 1.0 {
            // Smallest prefix whose mass reaches top_p (at least one token).
            let mut mass = 0.0;
            for (k, p) in probs.iter().enumerate() {
                mass += p;
                if mass >= cfg.top_p {
                    kept = Some(k + 1);
                    break;
                }
            }
        }
        // Without a nucleus (or one larger than the candidates) all `want` are kept once they
        // are the full top-k set.
        let kept = match kept {
            Some(k) => k,
            None if want >= limit => order.len(),
            None => {
                want = (want * 4).min(limit);
                continue;
            }
        };
        let mass: f64 = probs[..kept].iter().sum();
        let target = u * mass;
        let mut acc = 0.0;
        let mut last = order[0];
        for (&i, &p) in order[..kept].iter().zip(&probs[..kept]) {
            if p <= 0.0 {
                continue;
            }
            acc += p;
            last = i;
            if target < acc {
                break;
            }
        }
        return last;
    }
}

/// Indices of the `k` largest logits, descending, ties by ascending index (a total order, so
/// the set is well defined); NaN logits rank last.
fn top_candidates(logits: &[f32], k: usize) -> Vec<usize> {
    use std::cmp::Ordering;
    use std::collections::BinaryHeap;
    // Heap entries ordered so that the heap's top is the weakest kept candidate.
    #[derive(PartialEq)]
    struct Weakest(f32, usize);
    impl Eq for Weakest {}
    impl Ord for Weakest {
        fn cmp(&self, o: &Self) -> Ordering {
            // "Greater" = weaker = smaller logit, or same logit and larger index.
            o.0.partial_cmp(&self.0)
                .unwrap_or_else(|| self.0.is_nan().cmp(&o.0.is_nan()))
                .then(self.1.cmp(&o.1))
        }
    }
    impl PartialOrd for Weakest {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    let k = k.min(logits.len());
    let mut heap = BinaryHeap::with_capacity(k + 1);
    for (i, &x) in logits.iter().enumerate() {
        let e = Weakest(x, i);
        if heap.len() < k {
            heap.push(e);
        } else if heap.peek().is_some_and(|w| e < *w) {
            heap.pop();
            heap.push(e);
        }
    }
    heap.into_sorted_vec().into_iter().map(|w| w.1).collect()
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

    /// The draw the definition gives: inverse CDF over the distribution (top-k / top-p: over
    /// the kept tokens by rank, renormalised), in f64 with libm and a full sort.
    fn reference(logits: &[f32], cfg: &SamplerConfig, u: f64) -> (usize, f64, f64) {
        let t = cfg.temperature;
        let z: Vec<f64> = logits.iter().map(|&x| x as f64 / t).collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let norm = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let mut order: Vec<usize> = (0..z.len()).collect();
        // Untruncated draws walk the vocabulary in index order, truncated ones by rank.
        if cfg.top_k > 0 || cfg.top_p < 1.0 {
            order.sort_by(|&a, &b| z[b].partial_cmp(&z[a]).unwrap().then(a.cmp(&b)));
        }
        if cfg.top_k > 0 {
            order.truncate(cfg.top_k);
        }
        let probs: Vec<f64> = order.iter().map(|&i| (z[i] - norm).exp()).collect();
        let mut kept = probs.len();
        let mut mass = 0.0;
        for (k, p) in probs.iter().enumerate() {
            mass += p;
            if cfg.top_p < 1.0 && mass >= cfg.top_p {
                kept = k + 1;
                break;
            }
        }
        let total: f64 = probs[..kept].iter().sum();
        let mut acc = 0.0;
        for (&i, &p) in order[..kept].iter().zip(&probs[..kept]) {
            let below = acc;
            acc += p / total;
            if u < acc {
                // Distance from u to the edges of the chosen token's interval.
                return (i, z[i] - norm, (u - below).min(acc - u));
            }
        }
        (order[kept - 1], z[order[kept - 1]] - norm, 0.0)
    }

    #[test]
    fn fixed_logits_draw_what_the_definition_gives() {
        // 3000 logits (several sum blocks, a ragged last one), a few ties and -inf entries.
        let logits: Vec<f32> = (0..3000)
            .map(|i| match i % 997 {
                5 => f32::NEG_INFINITY,
                _ => ((i * 7919 % 1000) as f32 * 0.013).sin() * 6.0 + (i % 3) as f32,
            })
            .collect();
        let configs = [
            (0.6, 1.0, 0),
            (1.0, 1.0, 0),
            (0.6, 1.0, 50),
            (0.6, 0.9, 0),
            (0.8, 0.5, 20),
            (1.3, 0.999, 0),
        ];
        for (temperature, top_p, top_k) in configs {
            let cfg = SamplerConfig {
                temperature,
                top_p,
                top_k,
            };
            let mut rng = SeqRng::new(42);
            let mut checked = 0;
            for step in 0..300 {
                let u = rng.clone().uniform();
                let (tok, lp) = sample(&logits, &cfg, &mut rng);
                let (want, want_lp, margin) = reference(&logits, &cfg, u);
                assert!(
                    (lp as f64 - want_lp).abs() < 2e-5,
                    "{cfg:?} step {step}: log-prob {lp} vs {want_lp}"
                );
                // f32 sums may differ from f64 ones right at a CDF boundary.
                if margin > 1e-6 {
                    assert_eq!(tok as usize, want, "{cfg:?} step {step}");
                    checked += 1;
                }
            }
            assert!(
                checked > 290,
                "{cfg:?}: only {checked} draws away from boundaries"
            );
        }
    }

    #[test]
    fn never_draws_a_minus_infinity_logit() {
        let mut logits = vec![f32::NEG_INFINITY; 2000];
        logits[1234] = -3.0;
        logits[7] = -3.5;
        let cfg = SamplerConfig {
            temperature: 5.0,
            top_p: 1.0,
            top_k: 0,
        };
        let mut rng = SeqRng::new(3);
        for _ in 0..500 {
            let (t, lp) = sample(&logits, &cfg, &mut rng);
            assert!(t == 1234 || t == 7, "{t}");
            assert!(lp.is_finite());
        }
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
