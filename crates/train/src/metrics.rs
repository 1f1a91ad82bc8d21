//! The metrics of a run: [`StepMetrics`], one typed record per step whose serialised names are
//! the metric names (verl's where verl has one), and `metrics.jsonl`, one JSON object per step
//! (and per validation), appended and flushed as the run goes; on resume the lines past the
//! checkpoint's step are dropped. Every metric name is written in this file only.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oneshot_data::scoring::BenchmarkSummary;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const METRICS_FILE: &str = "metrics.jsonl";

/// Metric names read back from `metrics.jsonl` (plots, reports).
pub mod names {
    pub const STEP: &str = "step";
    pub const REWARD_MEAN: &str = "reward/mean";
    pub const ACC_MEAN: &str = "acc/mean";
    pub const RESPONSE_LENGTH_MEAN: &str = "response_length/mean";
    pub const ENTROPY: &str = "actor/entropy";
    pub const KL_LOSS: &str = "actor/kl_loss";
    pub const GRAD_NORM: &str = "actor/grad_norm";
    /// Validation metrics are `val/<set>/<stat>`.
    pub const VAL_PREFIX: &str = "val/";
}

/// The name of validation statistic `stat` (`acc`, `pass@8`, ...) of set `set`.
pub fn val_key(set: &str, stat: &str) -> String {
    format!("{}{set}/{stat}", names::VAL_PREFIX)
}

/// The metrics of one set, under `val/<name>/`: `acc` (accuracy, or avg@k for sampled
/// protocols), `pass@k` for k > 1, `response_length` (mean tokens, stop token included),
/// `truncated` (share stopped at the token limit) and `reflection` (responses with
/// rethink/recheck/recalculate). Shares are fractions in [0, 1], like the training accuracies;
/// `oneshot eval` reports the same numbers in percent.
pub fn validation_metrics(s: &BenchmarkSummary) -> BTreeMap<String, f64> {
    let key = |what: &str| val_key(&s.benchmark, what);
    let mut m = BTreeMap::new();
    m.insert(key("acc"), s.score / 100.0);
    for p in s.pass_at_k.iter().filter(|p| p.k > 1) {
        m.insert(key(&format!("pass@{}", p.k)), p.value / 100.0);
    }
    if let Some(len) = s.mean_response_tokens {
        m.insert(key("response_length"), len);
    }
    if let Some(t) = s.truncation_rate {
        m.insert(key("truncated"), t / 100.0);
    }
    m.insert(key("reflection"), s.reflection_responses as f64);
    m
}

/// One training step. Optional parts are absent from the JSON when the run does not have them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based: the number of steps done.
    pub step: usize,
    pub epoch: usize,
    #[serde(flatten)]
    pub reward: RewardStats,
    #[serde(flatten)]
    pub lengths: LengthStats,
    #[serde(
        rename = "batch/dropped_groups",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub dropped_groups: Option<usize>,
    #[serde(rename = "actor/lr")]
    pub lr: f64,
    /// No update ran (every group was dropped).
    #[serde(rename = "actor/skipped")]
    pub skipped: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none", default)]
    pub actor: Option<ActorStats>,
    #[serde(
        rename = "critic/vf_loss",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub critic_loss: Option<f64>,
    #[serde(flatten)]
    pub time: StepTimes,
    #[serde(rename = "throughput/gen_tokens_per_s")]
    pub gen_tokens_per_s: f64,
    #[serde(rename = "throughput/tokens_per_s")]
    pub tokens_per_s: f64,
    /// Validation and caller-added points (`val/<set>/<stat>`), joined to the step's line.
    #[serde(flatten)]
    pub validation: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardStats {
    #[serde(rename = "reward/mean")]
    pub mean: f64,
    #[serde(rename = "reward/std")]
    pub std: f64,
    /// Share of responses the checker judged correct.
    #[serde(rename = "acc/mean")]
    pub accuracy: f64,
    #[serde(
        rename = "reward/format",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub format: Option<f64>,
    #[serde(
        rename = "reward/length",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub length: Option<f64>,
    /// Mean KL penalty per token when KL is in the reward.
    #[serde(
        rename = "actor/reward_kl",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub kl_penalty: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LengthStats {
    #[serde(rename = "response_length/mean")]
    pub mean: f64,
    #[serde(rename = "response_length/max")]
    pub max: usize,
    #[serde(rename = "response_length/min")]
    pub min: usize,
    /// Share of responses stopped by the token limit.
    #[serde(rename = "response_length/clip_ratio")]
    pub clip_ratio: f64,
}

/// The actor update, loss terms averaged over its optimiser steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorStats {
    #[serde(rename = "actor/loss")]
    pub loss: f64,
    #[serde(rename = "actor/pg_loss")]
    pub pg_loss: f64,
    #[serde(rename = "actor/kl_loss")]
    pub kl_loss: f64,
    #[serde(rename = "actor/entropy")]
    pub entropy: f64,
    /// Token-weighted over the update.
    #[serde(rename = "actor/clipfrac")]
    pub clipfrac: f64,
    #[serde(rename = "actor/approx_kl")]
    pub approx_kl: f64,
    #[serde(rename = "actor/grad_norm")]
    pub grad_norm: f64,
    #[serde(rename = "actor/opt_steps")]
    pub opt_steps: usize,
}

/// Seconds per phase of the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTimes {
    #[serde(rename = "time/rollout")]
    pub rollout: f64,
    #[serde(rename = "time/reward")]
    pub reward: f64,
    #[serde(rename = "time/logprob")]
    pub logprob: f64,
    #[serde(rename = "time/update")]
    pub update: f64,
    #[serde(rename = "time/step")]
    pub step: f64,
}

impl StepMetrics {
    /// The JSON object of `metrics.jsonl`.
    pub fn to_map(&self) -> Result<Map<String, Value>> {
        match serde_json::to_value(self)? {
            Value::Object(m) => Ok(m),
            _ => unreachable!("a struct serialises to an object"),
        }
    }

    /// The scalars for TensorBoard (everything numeric but the step).
    pub fn scalars(&self) -> Result<Vec<(String, f32)>> {
        Ok(self
            .to_map()?
            .into_iter()
            .filter(|(k, _)| k != names::STEP)
            .filter_map(|(k, v)| Some((k, v.as_f64()? as f32)))
            .collect())
    }

    /// One line for a progress display.
    pub fn progress_message(&self) -> String {
        format!(
            "reward {:.3} acc {:.3} len {:.0} {:.1}s/step",
            self.reward.mean, self.reward.accuracy, self.lengths.mean, self.time.step
        )
    }
}

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `<dir>/metrics.jsonl`, keeping only lines whose `step` is at most `keep_through`
    /// (a fresh run passes 0 and starts an empty file).
    pub fn open(dir: &Path, keep_through: usize) -> Result<Self> {
        let path = dir.join(METRICS_FILE);
        let kept: Vec<String> = if keep_through > 0 && path.exists() {
            read_metrics(&path)?
                .into_iter()
                .filter(|m| {
                    m.get(names::STEP)
                        .and_then(Value::as_u64)
                        .is_some_and(|s| s as usize <= keep_through)
                })
                .map(|m| serde_json::to_string(&m))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        for line in kept {
            writeln!(file, "{line}")?;
        }
        file.flush()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Self { path, file })
    }

    pub fn append(&mut self, m: &Map<String, Value>) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(m)?)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a metrics file; a bad line is an error naming its number.
pub fn read_metrics(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a JSON object", path.display(), i + 1))
        })
        .collect()
}
