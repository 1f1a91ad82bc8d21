//! HAPO's history-aware length reward (arXiv 2505.11225, as in its public code).
//!
//! Each problem keeps `h`, the shortest correct response length (tokens) seen so far, unset at
//! first. A response of length `len` is scored against the `h` from *before* its batch:
//! `f = cos(pi/2 * min(len / h, 2))`; correct: `max(f, -0.7)`; incorrect: `min(f, 0)`; unset `h`:
//! 0. After the batch, `h = min(h, shortest correct length in the batch)`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Lower bound of the length reward of a correct response.
pub const CORRECT_FLOOR: f64 = -0.7;

/// The length reward of one response given the problem's previous history `h`.
/// `h == 0` (a correct empty response was seen) scores an empty response 1 and any other -1
/// before the bounds, the limit of `len / h` as `h -> 0`.
pub fn length_reward(len: usize, h: Option<usize>, correct: bool) -> f64 {
    let Some(h) = h else { return 0.0 };
    let ratio = if h == 0 {
        if len == 0 {
            0.0
        } else {
            2.0
        }
    } else {
        (len as f64 / h as f64).min(2.0)
    };
    let f = (std::f64::consts::FRAC_PI_2 * ratio).cos();
    if correct {
        f.max(CORRECT_FLOOR)
    } else {
        f.min(0.0)
    }
}

/// One scored response, as HAPO needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthSample<'a> {
    /// Stable key of the problem (e.g. its dataset index).
    pub problem: &'a str,
    /// Response length in tokens.
    pub len: usize,
    pub correct: bool,
}

/// Shortest correct length per problem; serialisable for checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HapoHistory {
    shortest_correct: BTreeMap<String, usize>,
}

impl HapoHistory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, problem: &str) -> Option<usize> {
        self.shortest_correct.get(problem).copied()
    }

    pub fn len(&self) -> usize {
        self.shortest_correct.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shortest_correct.is_empty()
    }

    /// Scores a whole batch against the history as it was before the batch, then folds the
    /// batch's shortest correct lengths into the history. Returns one length reward per sample.
    pub fn score_batch(&mut self, batch: &[LengthSample]) -> Vec<f64> {
        let rewards = batch
            .iter()
            .map(|s| length_reward(s.len, self.get(s.problem), s.correct))
            .collect();
        for s in batch.iter().filter(|s| s.correct) {
            let h = self
                .shortest_correct
                .entry(s.problem.to_string())
                .or_insert(s.len);
            *h = (*h).min(s.len);
        }
        rewards
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).context("HAPO history json")
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()?)
            .with_context(|| format!("writing HAPO history {}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading HAPO history {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("parsing {}", path.display()))
    }
}
