//! The lab: synthetic math tasks, a tokenizer and a small base model of our own, so that the
//! whole 1-shot RLVR pipeline (selection, training, evaluation) runs end to end on a CPU.
//!
//! - [`task`], [`families`], [`calc`]: seeded problem generators with worked solutions in six
//!   families and three difficulty levels; slips are injected into the arithmetic.
//! - [`corpus`]: the base model's pretraining text (mixed answer forms, controlled slip rate).
//! - [`splits`]: the RL pool (verl parquet) and the held-out lab benchmark (jsonl).
//! - [`tokenizer`]: byte-level BPE trained on the corpus, chat template, HF tokenizer files.
//! - [`pretrain`]: trains the Qwen2-architecture base model and saves an HF checkpoint.
//! - [`layout`]: a solution's text layout (opener, steps, re-check, answer line), written by
//!   the corpus and parsed back from model responses.
//! - [`metrics`], [`eval`]: strict / lenient / boxed accuracy, the working (direct, slipped,
//!   checked), greedy evaluation.
pub mod calc;
pub mod corpus;
pub mod eval;
pub mod families;
pub mod layout;
pub mod metrics;
pub mod pretrain;
pub mod rng;
pub mod splits;
pub mod task;
pub mod tokenizer;
pub mod weights;

pub use corpus::{AnswerForm, Corpus, CorpusConfig, Document};
pub use layout::Style;
pub use metrics::{Judged, LabJudge, LabScores, Rates};
pub use pretrain::{pretrain, ModelShape, PretrainConfig, PretrainReport, Progress};
pub use splits::{LabProblem, SplitConfig};
pub use task::{Family, Task};
