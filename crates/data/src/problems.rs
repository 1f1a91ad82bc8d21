//! Evaluation problems (question + gold label) read from jsonl or flat parquet files with
//! configurable field names. Every bad record is reported with file and line; none is dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DataError, IssueLog, Result};
use crate::verl::VerlRow;

/// One evaluation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 0-based position in its file: the problem index responses refer to (`idx`).
    pub idx: usize,
    pub question: String,
    /// The gold answer, as the checker receives it.
    pub label: String,
}

/// Where a record's gold label is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSource {
    /// A string or number field (numbers are written without a trailing `.0`: 27.0 -> "27").
    Field(String),
    /// The last `\boxed{...}` of a solution text field (minerva_math).
    BoxedIn(String),
    /// The first element of a list field, with surrounding `$` removed (olympiadbench's
    /// `final_answer`, as the Qwen2.5-Math harness does).
    FirstOf(String),
}

/// Field names of a problem file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemFields {
    /// Candidate question fields, the first present one is used.
    pub question: Vec<String>,
    pub label: LabelSource,
}

impl ProblemFields {
    /// `question` and `answer` fields.
    pub fn simple(question: &str, label: &str) -> Self {
        ProblemFields {
            question: vec![question.to_owned()],
            label: LabelSource::Field(label.to_owned()),
        }
    }
}

/// Extracts the content of the answer box from a solution text (the checker's extraction).
pub type BoxedExtractor = fn(&str) -> Option<String>;

/// Formats a JSON number as a label: integral floats lose their `.0`.
fn number_label(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

fn label_of(
    record: &Value,
    source: &LabelSource,
    extract: BoxedExtractor,
) -> std::result::Result<String, (String, String)> {
    let field = match source {
        LabelSource::Field(f) | LabelSource::BoxedIn(f) | LabelSource::FirstOf(f) => f,
    };
    let err = |msg: &str| (field.clone(), msg.to_owned());
    let value = record.get(field).ok_or_else(|| err("is missing"))?;
    let label = match (source, value) {
        (LabelSource::Field(_), Value::String(s)) => s.clone(),
        (LabelSource::Field(_), Value::Number(n)) => number_label(n),
        (LabelSource::Field(_), _) => return Err(err("must be a string or a number")),
        (LabelSource::BoxedIn(_), Value::String(s)) => {
            extract(s).ok_or_else(|| err("has no \\boxed{} answer"))?
        }
        (LabelSource::BoxedIn(_), _) => {
            return Err(err("must be a string (a solution with \\boxed{})"))
        }
        (LabelSource::FirstOf(_), Value::Array(items)) => match items.first() {
            Some(Value::String(s)) => s.trim().trim_matches('$').trim().to_owned(),
            Some(Value::Number(n)) => number_label(n),
            Some(_) => return Err(err("first element must be a string or a number")),
            None => return Err(err("is an empty list")),
        },
        (LabelSource::FirstOf(_), _) => return Err(err("must be a list")),
    };
    if label.trim().is_empty() {
        return Err(err("is empty"));
    }
    Ok(label)
}

fn question_of(record: &Value, fields: &[String]) -> std::result::Result<String, (String, String)> {
    for field in fields {
        match record.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => return Ok(s.clone()),
            Some(Value::String(_)) => return Err((field.clone(), "is empty".into())),
            Some(Value::Null) | None => continue,
            Some(_) => return Err((field.clone(), "must be a string".into())),
        }
    }
    Err((fields.join(" or "), "is missing".into()))
}

/// Reads a jsonl problem file. Blank lines are skipped; every other line must be a JSON object
/// with a question and a label, else it is listed in the returned [`DataError::BadRecords`].
pub fn read_jsonl_problems(
    path: &Path,
    fields: &ProblemFields,
    extract: BoxedExtractor,
) -> Result<Vec<Problem>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut log = IssueLog::new(path);
    let mut problems = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| DataError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = match serde_json::from_str(&line) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                log.push(line_no, None, "is not a JSON object");
                continue;
            }
            Err(e) => {
                log.push(line_no, None, format!("invalid JSON: {e}"));
                continue;
            }
        };
        let question = question_of(&record, &fields.question);
        let label = label_of(&record, &fields.label, extract);
        match (question, label) {
            (Ok(question), Ok(label)) => problems.push(Problem {
                idx: problems.len(),
                question,
                label,
            }),
            (q, l) => {
                for (field, msg) in [q.err(), l.err()].into_iter().flatten() {
                    log.push(line_no, Some(&field), msg);
                }
            }
        }
    }
    log.finish(problems)
}

/// Reads problems from a flat parquet file: `fields.question` and a `LabelSource::Field` label
/// must be top-level string (label: or number) columns.
pub fn read_parquet_problems(path: &Path, fields: &ProblemFields) -> Result<Vec<Problem>> {
    let LabelSource::Field(label_field) = &fields.label else {
        return Err(DataError::Invalid(
            "parquet problem files take the label from a plain column".into(),
        ));
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| DataError::format(path, format!("not a readable parquet file: {e}")))?;
    let mut log = IssueLog::new(path);
    let mut problems = Vec::new();
    let mut rows_seen = 0;
    for batch in reader {
        let batch =
            batch.map_err(|e| DataError::format(path, format!("reading a row batch: {e}")))?;
        let records = batch_to_json(path, &batch, &fields.question, label_field)?;
        for (row, record) in records.iter().enumerate() {
            match (
                question_of(record, &fields.question),
                label_of(record, &fields.label, |_| None),
            ) {
                (Ok(question), Ok(label)) => problems.push(Problem {
                    idx: problems.len(),
                    question,
                    label,
                }),
                (q, l) => {
                    for (field, msg) in [q.err(), l.err()].into_iter().flatten() {
                        log.push(rows_seen + row + 1, Some(&field), msg);
                    }
                }
            }
        }
        rows_seen += batch.num_rows();
    }
    log.finish(problems)
}

/// Turns the wanted scalar columns of a batch into one JSON object per row, so parquet and jsonl
/// share the field rules above.
fn batch_to_json(
    path: &Path,
    batch: &RecordBatch,
    questions: &[String],
    label: &str,
) -> Result<Vec<Value>> {
    use crate::verl::scalar_column_json;
    let mut records = vec![serde_json::Map::new(); batch.num_rows()];
    let names = questions
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(label));
    let mut found_question = false;
    for name in names {
        let Some(array) = batch.column_by_name(name) else {
            continue;
        };
        found_question |= name != label;
        let values = scalar_column_json(array).ok_or_else(|| {
            DataError::format(
                path,
                format!("column `{name}` has unsupported type {}", array.data_type()),
            )
        })?;
        for (record, value) in records.iter_mut().zip(values) {
            record.insert(name.to_owned(), value);
        }
    }
    if !found_question {
        return Err(DataError::format(
            path,
            format!("no question column (looked for {})", questions.join(", ")),
        ));
    }
    if batch.column_by_name(label).is_none() {
        return Err(DataError::format(
            path,
            format!("no label column `{label}`"),
        ));
    }
    Ok(records.into_iter().map(Value::Object).collect())
}

/// Problems from verl rows: the question is the last user message with the training suffix
/// removed, the label is `reward_model.ground_truth`.
pub fn problems_from_verl(rows: &[VerlRow]) -> Vec<Problem> {
    rows.iter()
        .enumerate()
        .map(|(idx, row)| {
            let text = row.user_text().unwrap_or_default();
            let question = crate::prompt::strip_training_suffix(text).to_owned();
            Problem {
                idx,
                question,
                label: row.ground_truth.clone(),
            }
        })
        .collect()
}
