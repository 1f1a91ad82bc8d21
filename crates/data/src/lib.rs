//! verl parquet and benchmark jsonl readers, prompt templates, example selection, scoring.
//!
//! - [`checker`]: `oneshot-verify` behind [`scoring::AnswerChecker`].
//! - [`verl`]: verl-format parquet rows, read and written with the paper's schema.
//! - [`problems`]: evaluation problems from jsonl/parquet with configurable field names.
//! - [`registry`]: the six benchmarks, their decoding protocol and where their files are.
//! - [`prompt`]: prompt templates (`qwen25-math-cot`, `chat`, `plain`).
//! - [`select`]: historical-variance ranking and few-shot training files.
//! - [`metrics`], [`scoring`]: pass@k, avg@k, lengths; per-sample records in, summaries out.
//! - [`sample_log`]: resumable per-sample jsonl; [`subset`]: `--limit`.
//! - [`responses`]: the input format of `oneshot score`.

pub mod checker;
pub mod error;
pub mod metrics;
pub mod problems;
pub mod prompt;
pub mod registry;
pub mod responses;
pub mod sample_log;
pub mod scoring;
pub mod select;
pub mod subset;
pub mod verl;

pub use error::{DataError, RecordIssue};
