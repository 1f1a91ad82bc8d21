//! Learning-rate schedules, as a function of the 0-based optimiser step.
//!
//! Warm-up is linear: `lr * (step + 1) / warmup_steps` for `step < warmup_steps`, so the first
//! step already moves and step `warmup_steps - 1` runs at the full lr. Cosine decays from `lr` at the end of the
//! warm-up to `min_lr_ratio * lr` at `total_steps`, following HF's
//! `get_cosine_schedule_with_warmup` with a floor.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The shape of a schedule, as configs name it (`optim.schedule`); an unknown name is a
/// deserialisation error listing these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// A fixed lr (the paper).
    #[default]
    Constant,
    WarmupConstant,
    WarmupCosine,
}

impl Schedule {
    /// The schedule with its parameters (`total_steps` only matters to the cosine).
    pub fn with(
        self,
        lr: f64,
        warmup_steps: usize,
        total_steps: usize,
        min_lr_ratio: f64,
    ) -> LrSchedule {
        match self {
            Schedule::Constant => LrSchedule::Constant { lr },
            Schedule::WarmupConstant => LrSchedule::WarmupConstant { lr, warmup_steps },
            Schedule::WarmupCosine => LrSchedule::WarmupCosine {
                lr,
                warmup_steps,
                total_steps: total_steps.max(1),
                min_lr_ratio,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The paper's schedule: a fixed lr.
    Constant {
        lr: f64,
    },
    WarmupConstant {
        lr: f64,
        warmup_steps: usize,
    },
    WarmupCosine {
        lr: f64,
        warmup_steps: usize,
        total_steps: usize,
        min_lr_ratio: f64,
    },
}

impl LrSchedule {
    /// Checks the parameters, with a message naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let lr = match *self {
            LrSchedule::Constant { lr } | LrSchedule::WarmupConstant { lr, .. } => lr,
            LrSchedule::WarmupCosine {
                lr,
                warmup_steps,
                total_steps,
                min_lr_ratio,
            } => {
                if total_steps == 0 || warmup_steps > total_steps {
                    bail!("lr schedule: warmup_steps {warmup_steps} must be <= total_steps {total_steps} > 0");
                }
                if !(0.0..=1.0).contains(&min_lr_ratio) {
                    bail!("lr schedule: min_lr_ratio {min_lr_ratio} must be in [0, 1]");
                }
                lr
            }
        };
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("lr schedule: lr {lr} must be finite and >= 0");
        }
        Ok(())
    }

    /// The learning rate of optimiser step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::WarmupConstant { lr, warmup_steps } => {
                lr * warmup_factor(step, warmup_steps)
            }
            LrSchedule::WarmupCosine {
                lr,
                warmup_steps,
                total_steps,
                min_lr_ratio,
            } => {
                if step < warmup_steps {
                    return lr * warmup_factor(step, warmup_steps);
                }
                let span = (total_steps - warmup_steps).max(1) as f64;
                let progress = ((step - warmup_steps) as f64 / span).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)
            }
        }
    }
}

fn warmup_factor(step: usize, warmup_steps: usize) -> f64 {
    if step < warmup_steps {
        (step + 1) as f64 / warmup_steps as f64
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_constant() {
        let s = LrSchedule::Constant { lr: 1e-6 };
        assert_eq!(s.lr_at(0), 1e-6);
        assert_eq!(s.lr_at(1999), 1e-6);
    }

    #[test]
    fn warmup_constant_ramps_then_holds() {
        let s = LrSchedule::WarmupConstant {
            lr: 1.0,
            warmup_steps: 4,
        };
        let got: Vec<f64> = (0..6).map(|t| s.lr_at(t)).collect();
        assert_eq!(got, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn warmup_cosine_hits_its_landmarks() {
        let s = LrSchedule::WarmupCosine {
            lr: 2.0,
            warmup_steps: 2,
            total_steps: 12,
            min_lr_ratio: 0.1,
        };
        assert_eq!(s.lr_at(0), 1.0);
        assert_eq!(s.lr_at(2), 2.0); // start of the decay
                                     // halfway through the decay: cosine factor 0.5 -> 2 * (0.1 + 0.9 * 0.5) = 1.1
        assert!((s.lr_at(7) - 1.1).abs() < 1e-12);
        assert!((s.lr_at(12) - 0.2).abs() < 1e-12); // floor
        assert!((s.lr_at(100) - 0.2).abs() < 1e-12); // stays at the floor
        let mut prev = f64::INFINITY;
        for t in 2..=12 {
            assert!(s.lr_at(t) <= prev, "cosine must not increase at step {t}");
            prev = s.lr_at(t);
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = LrSchedule::WarmupCosine {
            lr: 1.0,
            warmup_steps: 5,
            total_steps: 3,
            min_lr_ratio: 0.0,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("warmup_steps 5"), "{e}");
        let e = LrSchedule::Constant { lr: f64::NAN }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("lr NaN"), "{e}");
    }
}
