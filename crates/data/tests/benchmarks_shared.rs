//! The six benchmarks load from shared/data with the paper's sizes and a label for every record.

mod common;

use oneshot_data::checker::VerifyChecker;
use oneshot_data::registry::{benchmark, BenchmarkSource, BENCHMARKS};

#[test]
fn every_benchmark_loads_with_its_size_and_labels() {
    let Some(dir) = common::benchmarks() else {
        return;
    };
    let source = BenchmarkSource::Dir(dir);
    let sizes: Vec<(&str, usize)> = BENCHMARKS.iter().map(|b| (b.name, b.size)).collect();
    assert_eq!(
        sizes,
        [
            ("math500", 500),
            ("aime24", 30),
            ("amc23", 40),
            ("minerva_math", 272),
            ("olympiadbench", 675),
            ("aime25", 30)
        ]
    );
    for spec in &BENCHMARKS {
        let problems = spec
            .load(&source, VerifyChecker::extract_boxed)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        assert_eq!(problems.len(), spec.size, "{}", spec.name);
        for (i, p) in problems.iter().enumerate() {
            assert_eq!(p.idx, i);
            assert!(
                !p.label.trim().is_empty(),
                "{} #{i}: empty label",
                spec.name
            );
            assert!(
                !p.question.trim().is_empty(),
                "{} #{i}: empty question",
                spec.name
            );
        }
    }
}

#[test]
fn labels_follow_each_benchmarks_rule() {
    let Some(dir) = common::benchmarks() else {
        return;
    };
    let source = BenchmarkSource::Dir(dir);
    let first = |name: &str| {
        benchmark(name)
            .unwrap()
            .load(&source, VerifyChecker::extract_boxed)
            .unwrap()[0]
            .clone()
    };
    assert_eq!(
        first("math500").label,
        "\\left( 3, \\frac{\\pi}{2} \\right)"
    );
    assert_eq!(first("aime24").label, "204");
    assert_eq!(first("aime25").label, "70");
    // amc23 stores 27.0 as a JSON number.
    assert_eq!(first("amc23").label, "27");
    // minerva_math: the \boxed{} of the solution.
    assert_eq!(first("minerva_math").label, "1.6");
    // olympiadbench: final_answer[0], `$` removed; the question comes from `question`.
    assert_eq!(first("olympiadbench").label, "2");
    assert!(first("olympiadbench")
        .question
        .starts_with("Xenia and Sergey"));
    let second = benchmark("olympiadbench")
        .unwrap()
        .load(&source, VerifyChecker::extract_boxed)
        .unwrap()[1]
        .clone();
    assert_eq!(second.label, "\\frac{1}{2 n+2}");
}

#[test]
fn decoding_protocols_follow_the_paper() {
    for spec in &BENCHMARKS {
        let d = spec.decoding;
        assert_eq!((d.max_new_tokens, d.seed), (3072, 0));
        match spec.name {
            "aime24" | "aime25" | "amc23" => assert_eq!((d.temperature, d.samples), (0.6, 8)),
            _ => assert!(d.is_greedy() && d.samples == 1),
        }
    }
}

#[test]
fn missing_data_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = benchmark("aime24")
        .unwrap()
        .load(
            &BenchmarkSource::Dir(dir.path().into()),
            VerifyChecker::extract_boxed,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("aime24") && msg.contains("test.jsonl"),
        "{msg}"
    );
    assert!(benchmark("gsm8k")
        .unwrap_err()
        .to_string()
        .contains("math500"));
    // A file with the wrong number of problems is rejected with both counts.
    std::fs::create_dir_all(dir.path().join("aime24")).unwrap();
    std::fs::write(
        dir.path().join("aime24/test.jsonl"),
        "{\"problem\": \"q\", \"answer\": \"1\"}\n",
    )
    .unwrap();
    let msg = benchmark("aime24")
        .unwrap()
        .load(
            &BenchmarkSource::Dir(dir.path().into()),
            VerifyChecker::extract_boxed,
        )
        .unwrap_err()
        .to_string();
    assert!(msg.contains("30") && msg.contains("has 1"), "{msg}");
}

#[test]
fn hub_source_without_network_fails_with_a_hint() {
    // No network here (and none is needed in CI): the error must say what to do instead.
    let offline = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", offline.path());
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    let source = BenchmarkSource::Hub {
        repo: "someone/benchmarks".into(),
        revision: None,
    };
    let msg = benchmark("math500")
        .unwrap()
        .load(&source, VerifyChecker::extract_boxed)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("someone/benchmarks") && msg.contains("--data-dir"),
        "{msg}"
    );
}
