//! Per-problem and per-benchmark metrics: unbiased pass@k, avg@k (mean accuracy), response
//! lengths, truncation and self-reflection counts.

use serde::{Deserialize, Serialize};

/// Unbiased pass@k estimate for one problem with `n` samples of which `c` are correct
/// (Chen et al. 2021): `1 - C(n-c, k) / C(n, k)`, computed as `1 - prod_{i=n-c+1}^{n} (1 - k/i)`
/// so no binomial coefficient is formed (no overflow, no cancellation for large n).
/// Requires `k <= n` and `c <= n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(
        k >= 1 && k <= n && c <= n,
        "pass_at_k needs 1 <= k <= n and c <= n (n={n}, c={c}, k={k})"
    );
    if n - c < k {
        return 1.0;
    }
    let miss: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    1.0 - miss
}

/// The k values reported for `n` samples per problem: powers of two up to n, and n itself.
pub fn reported_ks(n: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = std::iter::successors(Some(1usize), |k| Some(k * 2))
        .take_while(|&k| k <= n)
        .collect();
    if n >= 1 && ks.last() != Some(&n) {
        ks.push(n);
    }
    ks
}

/// Words whose presence marks a self-reflective response (docs/PAPER.md §4), matched
/// case-insensitively as substrings ("Rethinking" counts as "rethink").
pub const REFLECTION_WORDS: [&str; 3] = ["rethink", "recheck", "recalculate"];

pub fn has_reflection(response: &str) -> bool {
    let lower = response.to_lowercase();
    REFLECTION_WORDS.iter().any(|w| lower.contains(w))
}

/// pass@k of a benchmark: the mean of the per-problem estimates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    pub k: usize,
    /// In percent.
    pub value: f64,
}
