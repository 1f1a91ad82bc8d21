//! Evaluation harness of `oneshot eval`: generate responses on the math benchmarks with the
//! paper's protocol (docs/PAPER.md §4), check them with the project's answer checker, report
//! accuracy / avg@k, pass@k, lengths, truncation and self-reflection, and resume interrupted runs.
//!
//! - [`evaluate`] / [`evaluate_samples`]: one benchmark in memory, no files (the trainer's
//!   periodic validation).
//! - [`run_benchmarks`]: the file-writing runner (`samples.jsonl`, `summary.json`, `table.md`),
//!   resumable.
//! - [`Generator`]: model + tokenizer + stop tokens + batch size; [`EvalSpec`]: problems,
//!   decoding, prompt template, subset.
//! - Per-sample seeds come from (seed, benchmark, problem, sample) only ([`sample_seed`]), so
//!   results do not depend on batching, on `--limit` or on resuming.
//!
//! Scoring and summaries are the data crate's (`oneshot_data::scoring`), shared with
//! `oneshot score`.

pub mod evaluate;
pub mod generator;
pub mod progress;
pub mod protocol;
pub mod runner;
pub mod seeds;
#[cfg(feature = "testing")]
pub mod testing;

pub use evaluate::{evaluate, evaluate_samples, run_samples, EvalSample, EvalSpec};
pub use generator::{Generated, Generator};
pub use progress::{Console, Progress, Silent};
pub use protocol::DecodingOverrides;
pub use runner::{run_benchmarks, BenchmarkRun, RunOptions, RunReport};
pub use seeds::sample_seed;
