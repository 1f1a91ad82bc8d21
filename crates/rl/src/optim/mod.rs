//! The optimiser: fused AdamW with f32 master weights, gradient accumulation, state files.

mod accumulate;
mod adamw;
mod host;
mod naive;
mod state;

pub use accumulate::GradAccumulator;
pub use adamw::{AdamW, AdamWConfig, StepStats, CLIP_EPS};
pub use naive::CandleOpsAdamW;
pub use state::{META_FILE, STATE_FILE};
