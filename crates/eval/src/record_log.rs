//! `samples.jsonl` of an evaluation: the data crate's per-sample record (the same lines
//! `oneshot score` writes) plus `finish_reason`, appended and synced as each sample finishes.
//!
//! Reading back, and cutting off a last line left half-written by a crash, is the data crate's
//! [`SampleLog`] (an unknown `finish_reason` field is ignored by its reader, and `oneshot score`
//! reads it as the truncation flag).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oneshot_data::sample_log::SampleLog;
use oneshot_data::scoring::SampleRecord;

use crate::evaluate::EvalSample;
use crate::generator::finish_reason_name;

pub const SAMPLES_FILE: &str = "samples.jsonl";

/// One line (without its newline): the record's fields in order, then `finish_reason`.
pub fn sample_line(sample: &EvalSample) -> Result<String> {
    let mut value = serde_json::to_value(&sample.record)?;
    let object = value.as_object_mut().context("a sample record serialises to a JSON object")?;
    object.insert("finish_reason".into(), finish_reason_name(sample.finish).into());
    Ok(serde_json::to_string(&value)?)
}

/// An open `samples.jsonl`, appending.
pub struct RecordLog {
    path: PathBuf,
    file: File,
}

impl RecordLog {
    /// Opens `path`: with `resume`, keeps the complete records already there (returned) and
    /// appends after them; without, starts an empty file.
    pub fn open(path: &Path, resume: bool) -> Result<(Self, Vec<SampleRecord>)> {
        // The data crate's log validates the records and trims a torn last line; appending is
        // done here because our lines carry one more field.
        let (log, finished) = SampleLog::open(path, resume)?;
        drop(log);
        let file = OpenOptions::new().append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok((RecordLog { path: path.to_owned(), file }, finished))
    }

    /// Appends one sample and syncs it to disk, so a crash loses at most the line being written.
    pub fn append(&mut self, sample: &EvalSample) -> Result<()> {
        let mut line = sample_line(sample)?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).with_context(|| format!("writing {}", self.path.display()))?;
        self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))
    }
}
