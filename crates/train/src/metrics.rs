//! `metrics.jsonl`: one JSON object per step (and per validation), appended and flushed as the
//! run goes; on resume the lines past the checkpoint's step are dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

pub const METRICS_FILE: &str = "metrics.jsonl";

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `<dir>/metrics.jsonl`, keeping only lines whose `step` is at most `keep_through`
    /// (a fresh run passes 0 and starts an empty file).
    pub fn open(dir: &Path, keep_through: usize) -> Result<Self> {
        let path = dir.join(METRICS_FILE);
        let kept: Vec<String> = if keep_through > 0 && path.exists() {
            read_metrics(&path)?
                .into_iter()
                .filter(|m| {
                    m.get("step")
                        .and_then(Value::as_u64)
                        .is_some_and(|s| s as usize <= keep_through)
                })
                .map(|m| serde_json::to_string(&m))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        for line in kept {
            writeln!(file, "{line}")?;
        }
        file.flush()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Self { path, file })
    }

    pub fn append(&mut self, m: &Map<String, Value>) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(m)?)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a metrics file; a bad line is an error naming its number.
pub fn read_metrics(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a JSON object", path.display(), i + 1))
        })
        .collect()
}
