//! `oneshot train`: 1-shot RLVR end to end (Wang et al. 2504.20571, verl 0.2's GRPO recipe).
//!
//! The data path is [`step`] (rollout, reward, old/ref log-probs, advantages, then [`update`]
//! of actor and critic), read top to bottom; [`metrics::StepMetrics`] is what a step reports.
//! Around it: [`config`] (TOML + `--set`), [`trainer`] (the loop, validation, NaN stop),
//! and the I/O edges: [`checkpoint`], [`metrics`], [`plots`], [`tensorboard`].

pub mod checkpoint;
pub mod config;
pub mod critic;
pub mod data_parallel;
pub mod experience;
pub mod metrics;
pub mod plots;
pub mod policy;
pub mod prompts;
pub mod seeds;
pub mod state;
pub mod step;
pub mod tensorboard;
pub mod toy;
pub mod trainer;
pub mod update;
pub mod validate;

pub use config::TrainConfig;
pub use metrics::StepMetrics;
pub use oneshot_dist as dist;
pub use trainer::{train, train_with, RunOptions, RunSummary, Trainer};
