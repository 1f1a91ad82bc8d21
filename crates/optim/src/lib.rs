//! The optimiser shared by RL training and lab pretraining: fused AdamW with f32 master
//! weights and global grad-norm clipping, gradient accumulation over micro-batches, its state
//! files (for bit-exact resume), and learning-rate schedules. Each runs on the host path (fused
//! CPU passes over host buffers) or the device-generic path (candle tensor ops on the
//! parameters' device), as `oneshot_kernels::device_path` decides.

mod accumulate;
mod adamw;
mod device;
mod host;
mod naive;
pub mod schedule;
mod state;

pub use accumulate::GradAccumulator;
pub use adamw::{AdamW, AdamWConfig, StepStats, CLIP_EPS};
pub use naive::CandleOpsAdamW;
pub use oneshot_kernels::device_path::StepPath;
pub use schedule::{LrSchedule, Schedule};
pub use state::{META_FILE, STATE_FILE};
