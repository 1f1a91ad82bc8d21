//! pass@k against hand-computed binomial ratios, and the summary numbers of a small run.

use oneshot_data::metrics::{has_reflection, pass_at_k, reported_ks};
use oneshot_data::scoring::{results_table, summarize, RunSummary, SampleRecord};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn pass_at_k_matches_hand_computed_values() {
    // 1 - C(n-c, k) / C(n, k)
    assert!(close(pass_at_k(5, 2, 1), 1.0 - 3.0 / 5.0)); // C(3,1)/C(5,1)
    assert!(close(pass_at_k(5, 2, 2), 1.0 - 3.0 / 10.0)); // C(3,2)/C(5,2)
    assert!(close(pass_at_k(5, 2, 3), 1.0 - 1.0 / 10.0)); // C(3,3)/C(5,3)
    assert!(close(pass_at_k(5, 2, 4), 1.0)); // n - c < k
    assert!(close(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0)); // C(7,5)/C(10,5)
    assert!(close(pass_at_k(8, 1, 4), 1.0 - 35.0 / 70.0)); // C(7,4)/C(8,4)
    assert!(close(pass_at_k(8, 0, 8), 0.0));
    assert!(close(pass_at_k(8, 8, 1), 1.0));
    assert!(close(pass_at_k(1, 1, 1), 1.0));
    assert!(close(pass_at_k(1, 0, 1), 0.0));
    // pass@1 is the plain fraction correct.
    assert!(close(pass_at_k(64, 17, 1), 17.0 / 64.0));
}

#[test]
fn pass_at_k_is_stable_for_large_n() {
    // C(1000, 500) overflows f64; the product form does not. 1 - C(990,10)/C(1000,10):
    let exact = 1.0
        - (0..10)
            .map(|i| (990 - i) as f64 / (1000 - i) as f64)
            .product::<f64>();
    assert!((pass_at_k(1000, 10, 10) - exact).abs() < 1e-12);
    let v = pass_at_k(2000, 3, 500);
    assert!(v > 0.0 && v < 1.0 && v.is_finite());
}

#[test]
fn reported_ks_are_powers_of_two_and_n() {
    assert_eq!(reported_ks(1), vec![1]);
    assert_eq!(reported_ks(8), vec![1, 2, 4, 8]);
    assert_eq!(reported_ks(6), vec![1, 2, 4, 6]);
    assert!(reported_ks(0).is_empty());
}

#[test]
fn reflection_words_match_any_case() {
    assert!(has_reflection("Let me Recheck the sum."));
    assert!(has_reflection("RETHINKING this"));
    assert!(has_reflection("we recalculate"));
    assert!(!has_reflection("re-check and re-think"));
}

fn rec(
    idx: usize,
    sample: usize,
    correct: bool,
    response: &str,
    n_tokens: Option<usize>,
    truncated: Option<bool>,
) -> SampleRecord {
    SampleRecord {
        benchmark: "aime24".into(),
        idx,
        sample,
        prompt: String::new(),
        response: response.into(),
        gold: "1".into(),
        extracted: None,
        correct,
        n_tokens,
        truncated,
        finish_reason: None,
    }
}

#[test]
fn summary_of_a_sampled_benchmark() {
    // Problem 0: 3 of 4 correct; problem 1: 0 of 4.
    let records = vec![
        rec(0, 0, true, "abcd", Some(10), Some(false)),
        rec(0, 1, true, "ab", Some(20), Some(false)),
        rec(0, 2, false, "let me recheck", Some(30), Some(true)),
        rec(0, 3, true, "", Some(40), Some(false)),
        rec(1, 0, false, "x", Some(50), Some(true)),
        rec(1, 1, false, "Rethink", Some(60), Some(false)),
        rec(1, 2, false, "y", Some(70), Some(false)),
        rec(1, 3, false, "z", Some(80), Some(false)),
    ];
    let s = summarize("aime24", "AIME24", &records).unwrap();
    assert_eq!(s.metric, "avg@4");
    assert!(close(s.score, 100.0 * (0.75 + 0.0) / 2.0));
    assert_eq!(
        (
            s.problems,
            s.samples,
            s.samples_per_problem,
            s.correct_samples
        ),
        (2, 8, 4, 3)
    );
    let ks: Vec<usize> = s.pass_at_k.iter().map(|p| p.k).collect();
    assert_eq!(ks, vec![1, 2, 4]);
    // problem 0: pass@2 = 1 - C(1,2)/C(4,2) = 1; problem 1: 0.
    assert!(close(s.pass_at_k[0].value, 37.5));
    assert!(close(s.pass_at_k[1].value, 50.0));
    assert!(close(s.pass_at_k[2].value, 50.0));
    assert_eq!(s.mean_response_tokens, Some(45.0));
    assert_eq!(s.max_response_tokens, Some(80));
    assert!(close(
        s.mean_response_chars,
        [4, 2, 14, 0, 1, 7, 1, 1].iter().sum::<u32>() as f64 / 8.0
    ));
    assert_eq!(s.max_response_chars, 14);
    assert_eq!(s.truncation_rate, Some(25.0));
    assert_eq!(s.reflection_responses, 2);

    // Without token counts / truncation flags on every sample, those metrics are absent.
    let mut partial = records.clone();
    partial[3].n_tokens = None;
    partial[4].truncated = None;
    let s = summarize("aime24", "AIME24", &partial).unwrap();
    assert_eq!(
        (
            s.mean_response_tokens,
            s.max_response_tokens,
            s.truncation_rate
        ),
        (None, None, None)
    );
    assert!(summarize("aime24", "AIME24", &[]).is_err());
}

#[test]
fn table_has_the_papers_columns_and_average() {
    let mk = |bench: &str, score_correct: bool| {
        let mut r = rec(0, 0, score_correct, "", None, None);
        r.benchmark = bench.into();
        summarize(bench, bench, &[r]).unwrap()
    };
    let one = RunSummary::new("base", vec![mk("math500", true)]);
    assert_eq!(one.six_benchmark_average, None);
    let all = RunSummary::new(
        "pi1",
        [
            "math500",
            "aime24",
            "amc23",
            "minerva_math",
            "olympiadbench",
            "aime25",
        ]
        .iter()
        .enumerate()
        .map(|(i, b)| mk(b, i % 2 == 0))
        .collect(),
    );
    assert_eq!(all.six_benchmark_average, Some(50.0));
    let table = results_table(&[one, all]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "| model | MATH500 | AIME24 | AMC23 | Minerva | OlympiadB | AIME25 | Avg |"
    );
    assert_eq!(lines[2], "| base | 100.0 | - | - | - | - | - | - |");
    assert_eq!(
        lines[3],
        "| pi1 | 100.0 | 0.0 | 100.0 | 0.0 | 100.0 | 0.0 | 50.0 |"
    );
}
