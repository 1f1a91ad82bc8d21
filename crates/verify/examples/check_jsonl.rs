//! Checks every line of a JSONL file of `{prediction, gold, options?}` and prints one JSON line
//! per case: `{"correct", "extracted", "gold_extracted"}`. The differential-testing script
//! (scripts/diff_math_verify.py) drives it.
//! Usage: cargo run --release -p oneshot-verify --example check_jsonl -- <cases.jsonl>
use oneshot_verify::{Checker, CheckerOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};

fn options(case: &serde_json::Value) -> CheckerOptions {
    let mut o = CheckerOptions::default();
    if let Some(p) = case.pointer("/options/precision").and_then(|v| v.as_u64()) {
        o.precision = Some(p as u32);
    }
    if let Some(s) = case.pointer("/options/choices").and_then(|v| v.as_array()) {
        o.choices = s
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
    }
    o
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: check_jsonl <cases.jsonl>");
    let file = std::fs::File::open(&path).expect("open cases");
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    for line in BufReader::new(file).lines() {
        let line = line.expect("read line");
        if line.trim().is_empty() {
            continue;
        }
        let case: serde_json::Value = serde_json::from_str(&line).expect("json line");
        let v = Checker::new(options(&case)).check(
            case["prediction"].as_str().unwrap_or(""),
            case["gold"].as_str().unwrap_or(""),
        );
        let row = serde_json::json!({
            "correct": v.correct,
            "extracted": v.extracted,
            "gold_extracted": v.gold_extracted,
        });
        writeln!(out, "{row}").expect("write");
    }
}
