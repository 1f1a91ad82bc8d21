//! `oneshot verify`: check one prediction against a gold answer, or a JSONL file of them.
//!
//! JSONL mode reads one object per line with string fields `prediction` and `gold` (other fields
//! pass through) and writes, in input order, the object plus `"correct"` and `"extracted"`. A bad
//! line becomes `{"line": N, "error": "..."}`, processing continues, and the exit code is 2.

use anyhow::{bail, Context, Result};
use oneshot_verify::{Checker, CheckerOptions};
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::io::{BufRead, BufWriter, Write};

/// Lines processed per parallel batch (bounds memory on huge inputs while keeping order).
const BATCH_LINES: usize = 16_384;

#[derive(clap::Args)]
pub struct Args {
    /// Gold answer (a bare answer or a full solution).
    #[arg(
        long,
        requires = "prediction",
        conflicts_with = "jsonl",
        allow_hyphen_values = true
    )]
    gold: Option<String>,
    /// Model response (or an already extracted answer).
    #[arg(long, requires = "gold", allow_hyphen_values = true)]
    prediction: Option<String>,
    /// JSONL file with `prediction` and `gold` fields per line; `-` reads stdin.
    #[arg(long)]
    jsonl: Option<String>,
    #[command(flatten)]
    checker: CheckerArgs,
}

/// Checker policies shared by `verify` and `bench verify`.
#[derive(clap::Args, Clone)]
pub struct CheckerArgs {
    /// Fall back to the last number in the response when no answer is marked.
    #[arg(long)]
    last_number_fallback: bool,
    /// Only the last \boxed{} counts (the strict training reward).
    #[arg(long)]
    boxed_only: bool,
    /// Relative tolerance for numeric agreement.
    #[arg(long, default_value_t = 1e-9)]
    tolerance: f64,
    /// Compare numbers after rounding both to this many decimals.
    #[arg(long)]
    precision: Option<u32>,
    /// Multiple-choice labels, comma separated (e.g. A,B,C,D).
    #[arg(long, value_delimiter = ',')]
    choices: Vec<String>,
}

impl CheckerArgs {
    pub fn options(&self) -> Result<CheckerOptions> {
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            bail!(
                "--tolerance must be a finite non-negative number, got {}",
                self.tolerance
            );
        }
        Ok(CheckerOptions {
            tolerance: self.tolerance,
            precision: self.precision,
            last_number_fallback: self.last_number_fallback,
            boxed_only: self.boxed_only,
            choices: self.choices.clone(),
            ..CheckerOptions::default()
        })
    }
}

pub fn run(args: Args) -> Result<i32> {
    let checker = Checker::new(args.checker.options()?);
    match (&args.gold, &args.prediction, &args.jsonl) {
        (Some(gold), Some(pred), None) => {
            let v = checker.check(pred, gold);
            let text = format!(
                "verdict: {}\nextracted: {}\ngold_extracted: {}\n",
                if v.correct { "correct" } else { "incorrect" },
                v.extracted.as_deref().unwrap_or("<none>"),
                v.gold_extracted.as_deref().unwrap_or("<none>")
            );
            quiet_on_broken_pipe(std::io::stdout().lock().write_all(text.as_bytes()))?;
            Ok(0)
        }
        (None, None, Some(path)) => run_jsonl(&checker, path),
        _ => bail!("give either --gold and --prediction, or --jsonl FILE (use - for stdin)"),
    }
}

fn run_jsonl(checker: &Checker, path: &str) -> Result<i32> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut had_error = false;
    let mut batch: Vec<(usize, String)> = Vec::with_capacity(BATCH_LINES);
    let mut line_no = 0usize;
    let mut lines = reader.lines();
    loop {
        let next = lines.next();
        let done = next.is_none();
        if let Some(line) = next {
            line_no += 1;
            match line {
                Ok(l) => batch.push((line_no, l)),
                // Invalid UTF-8 on one line: report it in place and carry on.
                Err(e) => batch.push((line_no, format!("\u{0}{e}"))),
            }
        }
        if batch.len() >= BATCH_LINES || (done && !batch.is_empty()) {
            let results: Vec<(String, bool)> = batch
                .par_iter()
                .map(|(n, l)| process_line(checker, *n, l))
                .collect();
            for (text, err) in results {
                had_error |= err;
                if !quiet_on_broken_pipe(writeln!(out, "{text}"))? {
                    return Ok(if had_error { 2 } else { 0 }); // reader went away (e.g. `| head`)
                }
            }
            batch.clear();
        }
        if done {
            break;
        }
    }
    quiet_on_broken_pipe(out.flush())?;
    Ok(if had_error { 2 } else { 0 })
}

/// Ok(true) when written, Ok(false) when the reader closed the pipe, Err for other failures.
fn quiet_on_broken_pipe(r: std::io::Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// One output line for one input line; the flag is true for an error record. Blank lines are
/// reported as errors too, so output lines stay aligned with input lines.
fn process_line(checker: &Checker, line_no: usize, line: &str) -> (String, bool) {
    let error = |msg: String| {
        let v = serde_json::json!({ "line": line_no, "error": msg });
        (v.to_string(), true)
    };
    if let Some(io_err) = line.strip_prefix('\u{0}') {
        return error(format!("unreadable line: {io_err}"));
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return error(format!("invalid JSON: {e}")),
    };
    let Value::Object(mut obj) = value else {
        return error("expected a JSON object".into());
    };
    let field = |obj: &Map<String, Value>, name: &str| -> Result<String, String> {
        match obj.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("field `{name}` must be a string")),
            None => Err(format!("missing field `{name}`")),
        }
    };
    let (pred, gold) = match (field(&obj, "prediction"), field(&obj, "gold")) {
        (Ok(p), Ok(g)) => (p, g),
        (Err(e), _) | (_, Err(e)) => return error(e),
    };
    let v = checker.check(&pred, &gold);
    obj.insert("correct".into(), Value::Bool(v.correct));
    obj.insert(
        "extracted".into(),
        v.extracted.map(Value::String).unwrap_or(Value::Null),
    );
    (Value::Object(obj).to_string(), false)
}
