//! Resumable per-sample jsonl: each checked sample is appended and synced to disk as soon as it
//! exists, so an interrupted evaluation resumes where it stopped.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, IssueLog, Result};
use crate::scoring::SampleRecord;

/// Reads the finished samples of a sample log.
///
/// A last line without its newline is a write cut short by a crash: it is ignored (and
/// [`SampleLog::open`] cuts it off). Any other unreadable line, and a repeated (idx, sample), is
/// an error naming the line.
pub fn read_samples(path: &Path) -> Result<Vec<SampleRecord>> {
    Ok(read_with_good_len(path)?.0)
}

/// The records and the byte length of the file up to the end of the last complete line.
fn read_with_good_len(path: &Path) -> Result<(Vec<SampleRecord>, u64)> {
    let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let mut log = IssueLog::new(path);
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text[..complete].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<SampleRecord>(line) {
            Ok(record) if !seen.insert(record.key()) => log.push(
                i + 1,
                None,
                format!("repeats problem {} sample {}", record.idx, record.sample),
            ),
            Ok(record) => records.push(record),
            Err(e) => log.push(i + 1, None, format!("not a sample record: {e}")),
        }
    }
    log.finish((records, complete as u64))
}

/// An open sample log, appending.
#[derive(Debug)]
pub struct SampleLog {
    path: PathBuf,
    file: File,
    done: HashSet<(usize, usize)>,
}

impl SampleLog {
    /// Opens `path`. With `resume`, keeps the finished samples (returned) and appends after them;
    /// without, starts an empty file.
    pub fn open(path: &Path, resume: bool) -> Result<(Self, Vec<SampleRecord>)> {
        let mut finished = Vec::new();
        if resume && path.exists() {
            let (records, good_len) = read_with_good_len(path)?;
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| DataError::io(path, e))?;
            file.set_len(good_len).map_err(|e| DataError::io(path, e))?;
            finished = records;
        } else {
            File::create(path).map_err(|e| DataError::io(path, e))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| DataError::io(path, e))?;
        let done = finished.iter().map(SampleRecord::key).collect();
        Ok((
            SampleLog {
                path: path.to_owned(),
                file,
                done,
            },
            finished,
        ))
    }

    /// Whether (idx, sample) is already in the log.
    pub fn is_done(&self, idx: usize, sample: usize) -> bool {
        self.done.contains(&(idx, sample))
    }

    /// Appends one record and syncs it to disk.
    pub fn append(&mut self, record: &SampleRecord) -> Result<()> {
        if !self.done.insert(record.key()) {
            return Err(DataError::Invalid(format!(
                "{}: problem {} sample {} is already recorded",
                self.path.display(),
                record.idx,
                record.sample
            )));
        }
        let mut line =
            serde_json::to_string(record).map_err(|e| DataError::Invalid(e.to_string()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| DataError::io(&self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| DataError::io(&self.path, e))
    }
}
