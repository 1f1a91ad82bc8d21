//! Wall-clock timing of hostile inputs (a manual check of the 50 ms bound; tests count work
//! units instead). Usage: cargo run --release -p oneshot-verify --example hostile_timing
use oneshot_verify::{Checker, CheckerOptions};
use std::time::Instant;

fn main() {
    let c = Checker::new(CheckerOptions::default());
    let garbage: String = (0..1_000_000u32)
        .map(|i| char::from(b"{}\\$^_()x1 "[(i * 7 % 11) as usize]))
        .collect();
    let cases: Vec<(&str, String)> = vec![
        (
            "10^6 nested braces",
            format!("\\boxed{{{}}}", "{".repeat(1_000_000)),
        ),
        (
            "10^6 balanced braces",
            format!("\\boxed{{{}1{}}}", "{".repeat(500_000), "}".repeat(500_000)),
        ),
        (
            "5000 nested fractions",
            format!(
                "\\boxed{{{}1{}}}",
                "\\frac{".repeat(5_000),
                "}{2}".repeat(5_000)
            ),
        ),
        ("2^2^2^99", "\\boxed{2^{2^{2^{99}}}}".to_string()),
        ("(x+1)^100000", "\\boxed{(x+1)^{100000}}".to_string()),
        ("(x+1)^60 vs expanded", "\\boxed{(x+1)^{60}}".to_string()),
        ("huge factorial", "\\boxed{99999999999!}".to_string()),
        ("x+ x 10^5", format!("\\boxed{{{}}}", "x+".repeat(100_000))),
        ("(x+1) x 400", format!("\\boxed{{{}}}", "(x+1)".repeat(400))),
        ("1 MB garbage", garbage),
        ("1 MB of x", "x".repeat(1 << 20)),
        ("many boxes", "\\boxed{1} ".repeat(100_000)),
        ("many dollars", "$1$ and ".repeat(100_000)),
    ];
    for (name, pred) in &cases {
        let t = Instant::now();
        let (v, work) = c.check_with_work(pred, "(x+1)^{60}");
        println!(
            "{name:>24}: {:8.2} ms  work {work:7}  correct={}",
            t.elapsed().as_secs_f64() * 1e3,
            v.correct
        );
    }
}
