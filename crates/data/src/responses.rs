//! Input of `oneshot score`: responses generated elsewhere, one JSON object per line.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `response` | string, required | the model's output |
//! | `idx` | integer | the problem's 0-based position in the benchmark file (`problem_idx` also accepted) |
//! | `gold` | string or number | the gold answer (`answer` also accepted); required when `idx` is absent |
//! | `sample` | integer | sample number within the problem; default: order of appearance |
//! | `prompt` | string | the prompt used; default: the benchmark question rendered with the template |
//! | `n_tokens` | integer | response length in tokens (enables token-length metrics) |
//! | `truncated` | bool | stopped at the token limit (or `finish_reason`: `"length"` = truncated) |
//!
//! With `idx`, the gold answer comes from the benchmark (a `gold` given too must match it).
//! Without `idx`, each line is a problem of its own, numbered by its order among such lines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use crate::error::{DataError, IssueLog, Result};
use crate::problems::Problem;
use crate::scoring::Response;

/// One parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLine {
    /// 1-based line number in the input file.
    pub line: usize,
    pub idx: Option<usize>,
    pub gold: Option<String>,
    pub sample: Option<usize>,
    pub prompt: Option<String>,
    pub response: String,
    pub n_tokens: Option<usize>,
    pub truncated: Option<bool>,
}

fn first_field<'a>(record: &'a Value, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    names
        .iter()
        .find_map(|&n| record.get(n).filter(|v| !v.is_null()).map(|v| (n, v)))
}

fn parse_line(record: &Value) -> std::result::Result<ResponseLine, (&'static str, String)> {
    let uint =
        |names: &[&'static str]| -> std::result::Result<Option<usize>, (&'static str, String)> {
            match first_field(record, names) {
                None => Ok(None),
                Some((name, v)) => v
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or((name, "must be a non-negative integer".to_owned())),
            }
        };
    let string =
        |names: &[&'static str]| -> std::result::Result<Option<String>, (&'static str, String)> {
            match first_field(record, names) {
                None => Ok(None),
                Some((_, Value::String(s))) => Ok(Some(s.clone())),
                Some((name, _)) => Err((name, "must be a string".to_owned())),
            }
        };
    let response = string(&["response"])?.ok_or(("response", "is missing".to_owned()))?;
    let gold = match first_field(record, &["gold", "answer"]) {
        None => None,
        Some((_, Value::String(s))) => Some(s.clone()),
        Some((_, Value::Number(n))) => Some(n.to_string()),
        Some((name, _)) => return Err((name, "must be a string or a number".to_owned())),
    };
    let truncated = match (
        first_field(record, &["truncated"]),
        first_field(record, &["finish_reason"]),
    ) {
        (Some((_, Value::Bool(b))), _) => Some(*b),
        (Some((name, _)), _) => return Err((name, "must be true or false".to_owned())),
        (None, Some((_, Value::String(reason)))) => Some(reason == "length"),
        (None, Some((name, _))) => return Err((name, "must be a string".to_owned())),
        (None, None) => None,
    };
    let line = ResponseLine {
        line: 0,
        idx: uint(&["idx", "problem_idx"])?,
        gold,
        sample: uint(&["sample"])?,
        prompt: string(&["prompt"])?,
        response,
        n_tokens: uint(&["n_tokens"])?,
        truncated,
    };
    if line.idx.is_none() && line.gold.is_none() {
        return Err((
            "idx",
            "is missing, and so is `gold`: one of them is needed".to_owned(),
        ));
    }
    Ok(line)
}

/// Reads a responses file; bad lines are listed with their line number and field.
pub fn read_responses(path: &Path) -> Result<Vec<ResponseLine>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut log = IssueLog::new(path);
    let mut lines = Vec::new();
    for (i, text) in BufReader::new(file).lines().enumerate() {
        let text = text.map_err(|e| DataError::io(path, e))?;
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(record @ Value::Object(_)) => match parse_line(&record) {
                Ok(mut line) => {
                    line.line = i + 1;
                    lines.push(line);
                }
                Err((field, msg)) => log.push(i + 1, Some(field), msg),
            },
            Ok(_) => log.push(i + 1, None, "is not a JSON object"),
            Err(e) => log.push(i + 1, None, format!("invalid JSON: {e}")),
        }
    }
    log.finish(lines)
}

/// Matches response lines to benchmark problems.
///
/// `problems` are the benchmark's problems already cut to the evaluated subset (`--limit`);
/// `render` turns a question into the prompt recorded when a line has none. Lines whose `idx` is
/// outside the subset are returned as the second value (the caller reports them); problems of
/// the subset with no response are an error, as are duplicate samples and gold mismatches.
pub fn attach_responses(
    path: &Path,
    lines: Vec<ResponseLine>,
    problems: &[Problem],
    benchmark_size: usize,
    render: &dyn Fn(&str) -> String,
) -> Result<(Vec<Response>, usize)> {
    // Mixing numbered and free-standing lines would make problem numbers collide.
    if lines.iter().any(|l| l.idx.is_some()) && lines.iter().any(|l| l.idx.is_none()) {
        return Err(DataError::Invalid(format!(
            "{}: lines with `idx` and lines without it cannot be mixed",
            path.display()
        )));
    }
    let by_idx: HashMap<usize, &Problem> = problems.iter().map(|p| (p.idx, p)).collect();
    let mut log = IssueLog::new(path);
    let mut next_sample: BTreeMap<usize, usize> = BTreeMap::new();
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    let mut out = Vec::new();
    let mut outside = 0;
    let mut standalone = 0;
    for line in lines {
        let (idx, gold, default_prompt) = match line.idx {
            Some(idx) if idx >= benchmark_size => {
                log.push(
                    line.line,
                    Some("idx"),
                    format!("{idx} is out of range (the benchmark has {benchmark_size} problems)"),
                );
                continue;
            }
            Some(idx) => {
                let Some(problem) = by_idx.get(&idx) else {
                    outside += 1;
                    continue;
                };
                if let Some(gold) = &line.gold {
                    if gold != &problem.label {
                        log.push(
                            line.line,
                            Some("gold"),
                            format!("`{gold}` differs from the benchmark's `{}`", problem.label),
                        );
                        continue;
                    }
                }
                (idx, problem.label.clone(), render(&problem.question))
            }
            None => {
                standalone += 1;
                (
                    standalone - 1,
                    line.gold.clone().unwrap_or_default(),
                    String::new(),
                )
            }
        };
        let counter = next_sample.entry(idx).or_default();
        let sample = line.sample.unwrap_or(*counter);
        *counter = (*counter).max(sample + 1);
        if !seen.insert((idx, sample)) {
            log.push(
                line.line,
                Some("sample"),
                format!("problem {idx} sample {sample} appears twice"),
            );
            continue;
        }
        out.push(Response {
            idx,
            sample,
            prompt: line.prompt.unwrap_or(default_prompt),
            response: line.response,
            gold,
            n_tokens: line.n_tokens,
            truncated: line.truncated,
        });
    }
    let out = log.finish(out)?;
    if standalone == 0 {
        let missing: Vec<usize> = problems
            .iter()
            .map(|p| p.idx)
            .filter(|i| !next_sample.contains_key(i))
            .collect();
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(20).map(|i| i.to_string()).collect();
            return Err(DataError::Invalid(format!(
                "{}: no response for {} of the {} problems scored (idx {}{}); use --limit to score a subset",
                path.display(),
                missing.len(),
                problems.len(),
                shown.join(", "),
                if missing.len() > 20 { ", ..." } else { "" }
            )));
        }
    }
    Ok((out, outside))
}
