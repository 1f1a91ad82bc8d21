//! The paper's data for the tests that need it (see `oneshot_shared_data`): a missing file skips
//! the test with a line saying so, or fails it under `CI=true`.
#![allow(dead_code)]

use std::path::PathBuf;

/// `data/train/<file>` (the pool, the few-shot files, the variance history).
pub fn train(file: &str) -> Option<PathBuf> {
    oneshot_shared_data::require(
        &format!("the training file {file}"),
        format!("data/train/{file}"),
    )
}

/// `data/benchmarks` (`<name>/test.jsonl` for the six benchmarks).
pub fn benchmarks() -> Option<PathBuf> {
    oneshot_shared_data::require("the benchmark files", "data/benchmarks/math500/test.jsonl")
        .map(|_| oneshot_shared_data::path("data/benchmarks"))
}
