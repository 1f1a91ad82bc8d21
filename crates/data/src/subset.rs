//! `--limit N`: which problems of a benchmark to evaluate when not all of them.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A deterministic subset rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The first N problems in file order.
    First(usize),
    /// N problems drawn without replacement by a ChaCha8 shuffle of 0..total seeded with `seed`,
    /// returned in ascending order.
    Seeded { n: usize, seed: u64 },
}

impl Limit {
    /// `limit` alone gives [`Limit::First`]; with a seed, [`Limit::Seeded`].
    pub fn new(limit: usize, seed: Option<u64>) -> Self {
        match seed {
            Some(seed) => Limit::Seeded { n: limit, seed },
            None => Limit::First(limit),
        }
    }

    /// The chosen problem indices (ascending) out of `total`; N larger than `total` keeps all.
    pub fn select(self, total: usize) -> Vec<usize> {
        match self {
            Limit::First(n) => (0..n.min(total)).collect(),
            Limit::Seeded { n, seed } => {
                let mut all: Vec<usize> = (0..total).collect();
                all.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
                all.truncate(n.min(total));
                all.sort_unstable();
                all
            }
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::First(n) => write!(f, "first {n}"),
            Limit::Seeded { n, seed } => write!(f, "{n} drawn with seed {seed}"),
        }
    }
}

impl FromStr for Limit {
    type Err = String;
    /// `N` or `N@SEED`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad limit `{s}`: expected N or N@SEED");
        match s.split_once('@') {
            Some((n, seed)) => Ok(Limit::Seeded {
                n: n.parse().map_err(|_| bad())?,
                seed: seed.parse().map_err(|_| bad())?,
            }),
            None => Ok(Limit::First(s.parse().map_err(|_| bad())?)),
        }
    }
}
