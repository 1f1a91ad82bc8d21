//! The arguments `eval` and `score` share: where the output goes, where the benchmark files come
//! from, and which subset of problems is evaluated.

use std::path::PathBuf;

use anyhow::Result;
use oneshot_data::registry::BenchmarkSource;
use oneshot_data::subset::Limit;
use serde_json::{json, Value};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchmarkArgs {
    /// Output directory: samples.jsonl, summary.json and table.md (one directory per benchmark
    /// for `eval`, see `oneshot_eval::runner`), and run.json (what made them).
    #[arg(long)]
    pub out: PathBuf,
    /// Benchmark data directory laid out as DIR/<benchmark>/test.jsonl [default: $ONESHOT_DATA].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Hugging Face dataset repo with the same layout, used when no data directory is given.
    #[arg(long)]
    pub hub_repo: Option<String>,
    #[arg(long)]
    pub hub_revision: Option<String>,
    /// Only N problems per benchmark: the first N, or N drawn with --limit-seed (ascending).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, requires = "limit")]
    pub limit_seed: Option<u64>,
}

impl BenchmarkArgs {
    /// Where the benchmark files are read from.
    pub fn source(&self) -> Result<BenchmarkSource> {
        Ok(BenchmarkSource::resolve(
            self.data_dir.as_deref(),
            self.hub_repo.as_deref(),
            self.hub_revision.as_deref(),
        )?)
    }

    /// The `--limit` rule, if any.
    pub fn limit(&self) -> Option<Limit> {
        self.limit.map(|n| Limit::new(n, self.limit_seed))
    }

    /// These arguments for `run.json`.
    pub fn record(&self) -> Value {
        json!({
            "out": self.out,
            "data_dir": self.data_dir,
            "hub_repo": self.hub_repo,
            "hub_revision": self.hub_revision,
            "limit": self.limit,
            "limit_seed": self.limit_seed,
        })
    }
}
