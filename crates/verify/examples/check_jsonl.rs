//! Checks every line of a JSONL file of `{prediction, gold, options?}` and prints one JSON line
//! per case: `{"correct", "extracted", "gold_extracted"}`. The differential-testing script
//! (scripts/diff_math_verify.py) drives it.
//! Usage: cargo run --release -p oneshot-verify --example check_jsonl -- <cases.jsonl>
use oneshot_verify::{Checker, CheckerOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

fn options(case: &serde_json::Value) -> CheckerOptions {
    let mut o = CheckerOptions::default();
    if let Some(p) = case.pointer("/options/precision").and_then(|v| v.as_u64()) {
        o.precision = Some(p as u32);
    }
    // Choices as the fixture spells them, or as the dev cases do (Math-Verify's strings).
    let choices = case
        .pointer("/options/choices")
        .or_else(|| case.pointer("/options/string_extraction/strings"));
    if let Some(s) = choices.and_then(|v| v.as_array()) {
        o.choices = s
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
    }
    o
}

fn run(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    for (k, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{path}:{}: {e}", k + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let case: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{path}:{}: {e}", k + 1))?;
        let field = |name: &str| {
            case[name]
                .as_str()
                .ok_or_else(|| format!("{path}:{}: field `{name}` is not a string", k + 1))
        };
        let v = Checker::new(options(&case)).check(field("prediction")?, field("gold")?);
        let row = serde_json::json!({
            "correct": v.correct,
            "extracted": v.extracted,
            "gold_extracted": v.gold_extracted,
        });
        writeln!(out, "{row}").map_err(|e| format!("stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: check_jsonl <cases.jsonl>");
        return ExitCode::from(2);
    };
    match run(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check_jsonl: {e}");
            ExitCode::FAILURE
        }
    }
}
