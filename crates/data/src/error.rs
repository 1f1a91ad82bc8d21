//! Errors of the data layer. Bad input records are collected (not dropped) and reported together,
//! each naming its file, its 1-based line/row and the field at fault.

use std::fmt;
use std::path::PathBuf;

/// One bad record: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordIssue {
    pub file: PathBuf,
    /// 1-based line (jsonl) or row (parquet) number.
    pub line: usize,
    /// The field at fault, when the problem is about one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RecordIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// How many issues an error message lists before summarising the rest.
const SHOWN_ISSUES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{}", format_issues(.0))]
    BadRecords(Vec<RecordIssue>),
    #[error("{0}")]
    Invalid(String),
}

fn format_issues(issues: &[RecordIssue]) -> String {
    let mut out = format!("{} bad record(s):", issues.len());
    for issue in issues.iter().take(SHOWN_ISSUES) {
        out.push_str("\n  ");
        out.push_str(&issue.to_string());
    }
    if issues.len() > SHOWN_ISSUES {
        out.push_str(&format!("\n  ... and {} more", issues.len() - SHOWN_ISSUES));
    }
    out
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Collects issues while a file is read; turns into `Err(BadRecords)` if any were found.
#[derive(Debug)]
pub(crate) struct IssueLog {
    file: PathBuf,
    issues: Vec<RecordIssue>,
}

impl IssueLog {
    pub(crate) fn new(file: impl Into<PathBuf>) -> Self {
        IssueLog {
            file: file.into(),
            issues: Vec::new(),
        }
    }
    pub(crate) fn push(&mut self, line: usize, field: Option<&str>, message: impl Into<String>) {
        self.issues.push(RecordIssue {
            file: self.file.clone(),
            line,
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }
    pub(crate) fn finish<T>(self, value: T) -> Result<T> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(DataError::BadRecords(self.issues))
        }
    }
}
