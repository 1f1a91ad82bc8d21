//! Composes the scalar reward of each response:
//! `R = correct_value * [correct] + format_value * [has \boxed{...}] + w * r_len(HAPO)`.
//!
//! Correctness is decided by the caller (with the answer checker of `oneshot-verify`), so this
//! module has no parsing of answers; the format check only asks whether a complete `\boxed{...}`
//! with balanced braces is present.

use serde::{Deserialize, Serialize};

use crate::hapo::{HapoHistory, LengthSample};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    /// Reward of a correct answer (the paper: 1; a format-only ablation: 0).
    pub correct_value: f64,
    /// Reward for containing a complete `\boxed{...}`; `None` = no format reward (the paper).
    pub format_value: Option<f64>,
    /// Weight w of HAPO's length reward; `None` = off.
    pub length_weight: Option<f64>,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            correct_value: 1.0,
            format_value: None,
            length_weight: None,
        }
    }
}

/// True when `text` contains `\boxed{` followed by a balanced closing brace.
pub fn has_boxed(text: &str) -> bool {
    let mut rest = text;
    while let Some(pos) = rest.find("\\boxed{") {
        let after = &rest[pos + "\\boxed{".len()..];
        let mut depth = 1usize;
        for c in after.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return true;
                    }
                }
                _ => {}
            }
        }
        rest = after;
    }
    false
}

/// The format reward of a response: `value` when it has a complete `\boxed{...}`, else 0.
pub fn format_reward(text: &str, value: f64) -> f64 {
    if has_boxed(text) {
        value
    } else {
        0.0
    }
}

/// One response to reward.
#[derive(Debug, Clone)]
pub struct ResponseOutcome<'a> {
    /// Stable key of the problem (used by HAPO's history).
    pub problem: &'a str,
    pub text: &'a str,
    /// Response length in tokens.
    pub len_tokens: usize,
    pub correct: bool,
}

/// The reward of one response and its parts (for logging).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardParts {
    pub correctness: f64,
    pub format: f64,
    /// HAPO's r_len before weighting.
    pub length: f64,
    pub total: f64,
}

/// Rewards a batch; with the length reward on, scores against `history` as it was before the
/// batch and then updates it (HAPO's order).
pub fn reward_batch(
    cfg: &RewardConfig,
    history: &mut HapoHistory,
    batch: &[ResponseOutcome],
) -> Vec<RewardParts> {
    let lengths: Vec<f64> = match cfg.length_weight {
        Some(_) => {
            let samples: Vec<LengthSample> = batch
                .iter()
                .map(|r| LengthSample {
                    problem: r.problem,
                    len: r.len_tokens,
                    correct: r.correct,
                })
                .collect();
            history.score_batch(&samples)
        }
        None => vec![0.0; batch.len()],
    };
    batch
        .iter()
        .zip(lengths)
        .map(|(r, length)| {
            let correctness = if r.correct { cfg.correct_value } else { 0.0 };
            let format = cfg.format_value.map_or(0.0, |v| format_reward(r.text, v));
            let total = correctness + format + cfg.length_weight.unwrap_or(0.0) * length;
            RewardParts {
                correctness,
                format,
                length,
                total,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_needs_balanced_braces() {
        assert!(has_boxed("so \\boxed{\\frac{1}{2}}."));
        assert!(!has_boxed("so \\boxed{\\frac{1}{2}"));
        assert!(!has_boxed("the answer is 3"));
        assert!(
            has_boxed("\\boxed{ \\boxed{4}"),
            "a later complete box counts"
        );
        assert_eq!(format_reward("\\boxed{4}", 0.5), 0.5);
        assert_eq!(format_reward("4", 0.5), 0.0);
    }
}
