//! Prints the checker's verdict, extractions and work for every dev case (debugging aid).
//! Usage: cargo run --release -p oneshot-verify --example dump_cases -- <dev_cases.jsonl>
use oneshot_verify::{Checker, CheckerOptions};

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: dump_cases <dev_cases.jsonl>");
    let text = std::fs::read_to_string(&path).expect("read cases");
    for (i, line) in text.lines().enumerate() {
        let case: serde_json::Value = serde_json::from_str(line).expect("json");
        let mut o = CheckerOptions::default();
        if let Some(p) = case.pointer("/options/precision").and_then(|v| v.as_u64()) {
            o.precision = Some(p as u32);
        }
        if let Some(s) = case
            .pointer("/options/string_extraction/strings")
            .and_then(|v| v.as_array())
        {
            o.choices = s
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
        }
        let (v, work) = Checker::new(o).check_with_work(
            case["prediction"].as_str().unwrap(),
            case["gold"].as_str().unwrap(),
        );
        println!(
            "{i:3} exp={:5} got={:5} work={work:6} P={:?} G={:?}",
            case["expected"], v.correct, v.extracted, v.gold_extracted
        );
    }
}
