//! Locating `shared/data` for the tests that need the real files: `$ONESHOT_SHARED`, else
//! `<workspace root>/../shared`. Missing data fails the test with a message (never a skip).
#![allow(dead_code)]

use std::path::PathBuf;

pub fn shared_data() -> PathBuf {
    let root = match std::env::var_os("ONESHOT_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let data = root.join("data");
    assert!(
        data.join("train/dsr_sub.parquet").is_file() && data.join("benchmarks/math500/test.jsonl").is_file(),
        "shared data not found at {} (set ONESHOT_SHARED to the directory holding data/train and data/benchmarks)",
        data.display()
    );
    data
}

pub fn train(file: &str) -> PathBuf {
    shared_data().join("train").join(file)
}
