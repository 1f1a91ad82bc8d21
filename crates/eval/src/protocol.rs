//! The decoding protocol of a benchmark run: the registry's default for the benchmark
//! (docs/PAPER.md §4: greedy for MATH500/Minerva/OlympiadBench, temperature 0.6 x 8 samples for
//! AIME24/AIME25/AMC23, 3,072 new tokens, seed 0) with the command line's overrides on top.

use anyhow::{ensure, Result};
use oneshot_data::registry::Decoding;
use serde::{Deserialize, Serialize};

/// Settings given explicitly (`--temperature`, `--samples`, ...); `None` keeps the benchmark's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodingOverrides {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub samples: Option<usize>,
    pub max_new_tokens: Option<usize>,
    pub seed: Option<u64>,
}

impl DecodingOverrides {
    /// `base` with every given override applied, checked for sense.
    pub fn apply(&self, base: Decoding) -> Result<Decoding> {
        let d = Decoding {
            temperature: self.temperature.unwrap_or(base.temperature),
            top_p: self.top_p.unwrap_or(base.top_p),
            samples: self.samples.unwrap_or(base.samples),
            max_new_tokens: self.max_new_tokens.unwrap_or(base.max_new_tokens),
            seed: self.seed.unwrap_or(base.seed),
        };
        check(&d)?;
        Ok(d)
    }
}

/// Rejects protocols that cannot run: negative or non-finite temperature, top_p outside (0, 1],
/// zero samples or zero new tokens.
pub fn check(d: &Decoding) -> Result<()> {
    ensure!(
        d.temperature.is_finite() && d.temperature >= 0.0,
        "temperature must be >= 0 (0 = greedy), got {}",
        d.temperature
    );
    ensure!(
        d.top_p > 0.0 && d.top_p <= 1.0,
        "top_p must be in (0, 1], got {}",
        d.top_p
    );
    ensure!(d.samples >= 1, "samples per problem must be at least 1");
    ensure!(d.max_new_tokens >= 1, "max new tokens must be at least 1");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_name() {
        let o = DecodingOverrides {
            samples: Some(4),
            max_new_tokens: Some(16),
            ..Default::default()
        };
        let d = o.apply(Decoding::SAMPLED_8).unwrap();
        assert_eq!(
            d,
            Decoding {
                samples: 4,
                max_new_tokens: 16,
                ..Decoding::SAMPLED_8
            }
        );
        assert_eq!(
            DecodingOverrides::default()
                .apply(Decoding::GREEDY)
                .unwrap(),
            Decoding::GREEDY
        );
    }

    #[test]
    fn senseless_protocols_are_refused() {
        for o in [
            DecodingOverrides {
                temperature: Some(-0.1),
                ..Default::default()
            },
            DecodingOverrides {
                top_p: Some(0.0),
                ..Default::default()
            },
            DecodingOverrides {
                top_p: Some(1.5),
                ..Default::default()
            },
            DecodingOverrides {
                samples: Some(0),
                ..Default::default()
            },
            DecodingOverrides {
                max_new_tokens: Some(0),
                ..Default::default()
            },
        ] {
            assert!(
                o.apply(Decoding::GREEDY).is_err(),
                "{o:?} should be refused"
            );
        }
    }
}
