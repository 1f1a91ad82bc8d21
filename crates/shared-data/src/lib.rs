//! Where the paper's data lives: `$ONESHOT_SHARED`, else `shared/` beside the workspace
//! (`<workspace>/../shared`), holding `data/train`, `data/benchmarks` and `data/verifier`.
//!
//! A fresh clone has no such directory, so tests that read it call [`require`], which skips
//! (prints a line and returns `None`) when the file is missing, except under `CI=true`, where
//! a missing file is a failure: CI must run every test.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the shared directory.
pub const ENV: &str = "ONESHOT_SHARED";

/// `shared/` beside the workspace this crate was built in.
fn beside_workspace() -> PathBuf {
    // CARGO_MANIFEST_DIR is <workspace>/crates/shared-data.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.ancestors().nth(3) {
        Some(parent) => parent.join("shared"),
        None => manifest.join("../../../shared"),
    }
}

/// The shared directory: `$ONESHOT_SHARED` when set and not empty, else `<workspace>/../shared`.
/// It may not exist.
pub fn root() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => beside_workspace(),
    }
}

/// `rel_path` under the shared directory (it may not exist).
pub fn path(rel_path: impl AsRef<Path>) -> PathBuf {
    root().join(rel_path)
}

/// Whether missing data fails instead of skipping: `CI` is `true` or `1`.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// For a test that needs `rel_path` under the shared directory (a file or a directory): its
/// full path when it exists. When it does not, prints `skipped: <what>, set ONESHOT_SHARED ...`
/// to stderr and returns `None`; under `CI=true` it panics naming the missing path instead.
///
/// ```no_run
/// let Some(file) = oneshot_shared_data::require("the pi1 training file", "data/train/pi1_r128.parquet") else {
///     return;
/// };
/// ```
#[track_caller]
pub fn require(what: &str, rel_path: impl AsRef<Path>) -> Option<PathBuf> {
    let full = path(rel_path);
    if full.exists() {
        return Some(full);
    }
    if strict() {
        panic!(
            "{what}: {} does not exist (CI=true: missing data is a failure; set {ENV} to the \
             directory holding data/)",
            full.display()
        );
    }
    // Written to the process's stderr, not through eprintln!, so that the test harness's
    // output capture does not hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {what}, set {ENV} (no {})",
        full.display()
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_root_is_beside_the_workspace() {
        let root = beside_workspace();
        assert_eq!(root.file_name().unwrap(), "shared");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .parent()
            .unwrap();
        assert!(workspace.join("Cargo.toml").is_file());
        assert_eq!(root.parent().unwrap(), workspace.parent().unwrap());
    }
}
