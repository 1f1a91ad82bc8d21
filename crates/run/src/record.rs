//! `run.json`: what a run directory was made by. Written when the command starts and again when
//! it ends (so the kernel paths that ran are complete, and a run that died shows no end time).
//!
//! ```json
//! {
//!   "command": "oneshot eval --model ... --out runs/eval",
//!   "oneshot_version": "0.1.0",
//!   "git": { "commit": "ae537f3...", "dirty": false },
//!   "cpu": { "model": "Intel(R) Xeon(R) ...", "flags": "fpu ... avx2 ... avx512f ..." },
//!   "threads": 16,
//!   "started_at": "2025-01-31T12:00:00Z",
//!   "finished_at": "2025-01-31T12:03:37Z",
//!   "seconds": 217.4,
//!   "kernels": { "isa": "detected amx, active amx (cap: auto)", "paths": ["gemm_bf16:amx"] },
//!   "config": { ... the resolved configuration ... }
//! }
//! ```
//! Values that cannot be found are `"unknown"` (commit, CPU) or `null` (dirty flag, kernels
//! before the end).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

/// The file name in a run directory.
pub const RUN_FILE: &str = "run.json";

/// Which kernel paths ran in this process, for the record's `kernels` field.
pub trait KernelReport {
    /// Names of the kernel paths that ran (e.g. `matmul_nt:avx512`).
    fn paths_used(&self) -> Vec<String>;
    /// One line on the instruction set: detected, active, and why.
    fn summary(&self) -> String;
}

/// The kernel paths this process ran and its instruction-set level, from `oneshot_kernels::isa`
/// (the dispatch sites record each path they take).
pub struct Kernels;

impl KernelReport for Kernels {
    fn paths_used(&self) -> Vec<String> {
        oneshot_kernels::isa::paths_used()
    }
    fn summary(&self) -> String {
        oneshot_kernels::isa::summary().to_string()
    }
}

/// Reports nothing (`kernels` stays `null`).
pub struct NoKernelReport;

impl KernelReport for NoKernelReport {
    fn paths_used(&self) -> Vec<String> {
        Vec::new()
    }
    fn summary(&self) -> String {
        String::new()
    }
}

static BUILD_COMMIT: OnceLock<String> = OnceLock::new();

/// The commit a binary was built from (its build script's `git rev-parse HEAD`). Set once at
/// start-up; without it the record asks git about the workspace this crate was built in.
pub fn set_build_commit(commit: &str) {
    let _ = BUILD_COMMIT.set(commit.trim().to_owned());
}

/// The workspace this crate was built in (`<workspace>/crates/run`).
fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace())
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `{commit, dirty}`: the build commit (or the workspace's HEAD); dirty when the workspace is at
/// that commit and has uncommitted changes to tracked files, `null` when that cannot be told.
fn git_info() -> Value {
    let head = git(&["rev-parse", "HEAD"]);
    let commit = BUILD_COMMIT
        .get()
        .filter(|c| !c.is_empty() && c.as_str() != "unknown")
        .cloned()
        .or_else(|| head.clone())
        .unwrap_or_else(|| "unknown".into());
    let dirty = match head {
        Some(h) if h == commit => {
            git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty())
        }
        _ => None,
    };
    json!({ "commit": commit, "dirty": dirty })
}

/// `{model, flags}` from `/proc/cpuinfo` (Linux); `"unknown"` elsewhere or when unreadable.
pub fn cpu_info() -> Value {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |names: &[&str]| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            names.contains(&key.trim()).then(|| value.trim().to_owned())
        })
    };
    let model = field(&["model name", "Hardware", "CPU part"]).unwrap_or_else(|| "unknown".into());
    // One space-separated string: a JSON array would put each of ~100 flags on its own line.
    let flags = field(&["flags", "Features"])
        .map(|f| f.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    json!({ "model": model, "flags": flags })
}

/// The process's command line, each argument quoted when the shell would need it.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    utc(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The worker threads this process computes with: rayon's pool size.
fn threads() -> usize {
    rayon::current_num_threads()
}

/// An open `run.json`: written by [`write_run_json`], completed by [`RunRecord::finish`].
pub struct RunRecord {
    path: PathBuf,
    fields: Map<String, Value>,
    started: Instant,
}

/// Writes `<dir>/run.json` (creating `dir`) for a command starting now, with its resolved
/// configuration; returns the record to [`finish`](RunRecord::finish) at the end.
pub fn write_run_json(dir: &Path, command: &str, resolved_config: Value) -> Result<RunRecord> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut fields = Map::new();
    fields.insert("command".into(), command.into());
    fields.insert("oneshot_version".into(), env!("CARGO_PKG_VERSION").into());
    fields.insert("git".into(), git_info());
    fields.insert("cpu".into(), cpu_info());
    fields.insert("threads".into(), threads().into());
    fields.insert("started_at".into(), utc_now().into());
    fields.insert("finished_at".into(), Value::Null);
    fields.insert("seconds".into(), Value::Null);
    fields.insert("kernels".into(), Value::Null);
    fields.insert("config".into(), resolved_config);
    let record = RunRecord {
        path: dir.join(RUN_FILE),
        fields,
        started: Instant::now(),
    };
    record.write()?;
    Ok(record)
}

impl RunRecord {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets a top-level field (e.g. an outcome) and rewrites the file.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        self.fields.insert(key.to_owned(), value);
        self.write()
    }

    /// Records the end time, the duration and the kernel paths that ran, and rewrites the file.
    pub fn finish(&mut self, kernels: &dyn KernelReport) -> Result<()> {
        self.fields.insert("finished_at".into(), utc_now().into());
        self.fields.insert(
            "seconds".into(),
            json!((self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        );
        let summary = kernels.summary();
        let paths = kernels.paths_used();
        let report = if summary.is_empty() && paths.is_empty() {
            Value::Null
        } else {
            json!({ "isa": summary, "paths": paths })
        };
        self.fields.insert("kernels".into(), report);
        self.write()
    }

    /// Replaces the file atomically: a reader never sees half a record.
    fn write(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.fields)? + "\n";
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
