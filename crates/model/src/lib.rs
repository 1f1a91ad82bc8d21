//! Qwen2/Llama decoder on candle: loading, differentiable log-probs, KV-cache sampling,
//! HF-format saving.
//!
//! - [`Model::from_dir`] / [`Model::random`]: build; [`Model::vars`]: the trainable variables.
//! - [`Model::token_logprobs`] (no graph), [`Model::token_logprobs_tracked`] (graph, call
//!   `.backward()` yourself), [`Model::logprobs_with_grad`] (memory-bounded driver with
//!   optional per-layer recomputation).
//! - [`Model::generate`]: batched KV-cache sampling with per-sequence seeds.
//! - [`Model::save`]: HF layout.
//! - [`lora`]: LoRA adapters (PEFT's layout), the base as a free KL reference, merging.
pub mod batch;
pub mod config;
mod detmath;
pub mod device_sampling;
pub mod generate;
pub mod kv_cache;
pub mod layers;
pub mod logprobs;
pub mod lora;
pub mod model;
pub mod paged_kv;
pub mod params;
mod placement;
mod recompute;
pub mod rope;
pub mod sampling;
mod save;

pub use batch::Batch;
pub use config::{Arch, ModelConfig, RopeScaling};
pub use generate::{FinishReason, GenerateOptions, GenerateReport, Generation, StopCheck};
pub use layers::{MatmulPrecision, BF16_MIN_ROWS};
pub use logprobs::LogprobOptions;
pub use lora::{LoraConfig, Target as LoraTarget};
pub use model::{hf_dtype_name, parse_dtype, Model};
pub use placement::{DeviceSpec, WeightDtype};
pub use sampling::SamplerConfig;
