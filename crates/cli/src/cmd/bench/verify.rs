//! `oneshot bench verify`: time the answer checker on labelled cases, single-threaded and on all
//! cores, and report its agreement with the labels.

use crate::cmd::verify::CheckerArgs;
use anyhow::{bail, Context, Result};
use oneshot_verify::{Checker, CheckerOptions};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Labelled cases (JSONL with prediction, gold, expected; optional options). Default:
    /// data/verifier/dev_cases.jsonl in $ONESHOT_SHARED, else in shared/ beside the workspace.
    #[arg(long)]
    cases: Option<PathBuf>,
    /// How many times the whole case set is checked in each timed run.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    checker: CheckerArgs,
}

struct Case {
    prediction: String,
    gold: String,
    expected: bool,
    checker: Checker,
}

fn default_cases() -> PathBuf {
    oneshot_shared_data::path("data/verifier/dev_cases.jsonl")
}

fn load(path: &PathBuf, base: &CheckerOptions) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read cases from {}", path.display()))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: invalid JSON", path.display(), i + 1))?;
        let s = |k: &str| -> Result<String> {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(String::from)
                .with_context(|| {
                    format!("{}:{}: missing string field `{k}`", path.display(), i + 1)
                })
        };
        let expected = v
            .get("expected")
            .and_then(|x| x.as_bool())
            .with_context(|| {
                format!(
                    "{}:{}: missing boolean field `expected`",
                    path.display(),
                    i + 1
                )
            })?;
        // Cases may carry the options they were labelled under (precision, choices).
        let mut opts = base.clone();
        if let Some(p) = v.pointer("/options/precision").and_then(|x| x.as_u64()) {
            opts.precision = Some(p as u32);
        }
        if let Some(list) = v
            .pointer("/options/string_extraction/strings")
            .and_then(|x| x.as_array())
        {
            opts.choices = list
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
        }
        cases.push(Case {
            prediction: s("prediction")?,
            gold: s("gold")?,
            expected,
            checker: Checker::new(opts),
        });
    }
    if cases.is_empty() {
        bail!("{}: no cases", path.display());
    }
    Ok(cases)
}

pub fn run(args: Args) -> Result<i32> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let path = args.cases.clone().unwrap_or_else(default_cases);
    let cases = load(&path, &args.checker.options()?)?;
    let agree = cases
        .iter()
        .filter(|c| c.checker.check(&c.prediction, &c.gold).correct == c.expected)
        .count();
    let checks = cases.len() * args.repeat;

    let t = Instant::now();
    let mut correct_single = 0usize;
    for _ in 0..args.repeat {
        for c in &cases {
            correct_single += c.checker.check(&c.prediction, &c.gold).correct as usize;
        }
    }
    let single_s = t.elapsed().as_secs_f64();

    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let correct_par: usize = (0..args.repeat)
        .into_par_iter()
        .flat_map_iter(|_| cases.iter())
        .map(|c| c.checker.check(&c.prediction, &c.gold).correct as usize)
        .sum();
    let par_s = t.elapsed().as_secs_f64();
    if correct_par != correct_single {
        bail!("parallel and single-threaded runs disagree ({correct_par} vs {correct_single})");
    }

    let agreement = agree as f64 / cases.len() as f64;
    if args.json {
        let v = serde_json::json!({
            "cases": cases.len(), "repeat": args.repeat, "checks": checks,
            "agreement": agreement, "agree": agree,
            "single_thread_s": single_s, "single_thread_us_per_check": 1e6 * single_s / checks as f64,
            "all_cores_threads": threads, "all_cores_s": par_s,
            "all_cores_us_per_check": 1e6 * par_s / checks as f64,
        });
        println!("{v}");
    } else {
        println!(
            "cases: {} from {} (x{} repeats = {checks} checks)",
            cases.len(),
            path.display(),
            args.repeat
        );
        println!(
            "agreement with labels: {agree}/{} = {:.2}%",
            cases.len(),
            100.0 * agreement
        );
        println!(
            "single thread: {single_s:.3} s total, {:.1} us/check, {:.0} checks/s",
            1e6 * single_s / checks as f64,
            checks as f64 / single_s
        );
        println!(
            "all cores ({threads} threads): {par_s:.3} s total, {:.1} us/check, {:.0} checks/s",
            1e6 * par_s / checks as f64,
            checks as f64 / par_s
        );
    }
    Ok(0)
}
