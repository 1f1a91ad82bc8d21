//! Property tests: arbitrary strings and random nested LaTeX never panic, and every check stays
//! within its work budget (measured in work units, not wall time).

use oneshot_verify::{answers_equal, extract_answer, Checker, CheckerOptions};
use proptest::prelude::*;

/// Random LaTeX-ish answers built from the constructs the parser knows, nested a few levels.
fn latex() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "-?[0-9]{1,4}(\\.[0-9]{1,3})?".prop_map(|s| s),
        "[a-zA-Z]".prop_map(|s| s),
        Just("\\pi".to_string()),
        Just("e".to_string()),
        Just("i".to_string()),
        Just("\\infty".to_string()),
        Just("x_{1}".to_string()),
    ];
    leaf.prop_recursive(5, 64, 4, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("\\frac{{{a}}}{{{b}}}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}^{{{b}}}")),
            inner.clone().prop_map(|a| format!("\\sqrt{{{a}}}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("\\sqrt[{a}]{{{b}}}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}, {b}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} \\pm {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("\\{{{a}, {b}\\}}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} \\le {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} = {b}")),
            inner.clone().prop_map(|a| format!("\\sin({a})")),
            inner.clone().prop_map(|a| format!("\\log_{{2}} {a}")),
            inner.clone().prop_map(|a| format!("\\left| {a} \\right|")),
            inner.clone().prop_map(|a| format!("{a}!")),
            inner.clone().prop_map(|a| format!("{a}\\%")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!(
                "\\begin{{pmatrix}} {a} & {b} \\\\ {b} & {a} \\end{{pmatrix}}"
            )),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} \\cdot {b} - {a}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("\\binom{{{a}}}{{{b}}}")),
        ]
    })
}

fn opts() -> CheckerOptions {
    CheckerOptions::default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(pred in any::<String>(), gold in any::<String>()) {
        let o = opts();
        let (_, work) = Checker::new(o.clone()).check_with_work(&pred, &gold);
        prop_assert!(work <= o.work_limit);
        let _ = extract_answer(&pred, &o);
    }

    #[test]
    fn latex_soup_never_panics(pred in "[\\\\{}()\\[\\]^_$a-z0-9+\\-*/=<>,.!| ]{0,200}", gold in "[\\\\{}()^_a-z0-9+\\-]{0,40}") {
        let o = opts();
        let (_, work) = Checker::new(o.clone()).check_with_work(&pred, &gold);
        prop_assert!(work <= o.work_limit);
    }

    #[test]
    fn nested_latex_stays_in_budget(a in latex(), b in latex()) {
        let o = opts();
        let (v, work) = Checker::new(o.clone()).check_with_work(&format!("\\boxed{{{a}}}"), &b);
        prop_assert!(work <= o.work_limit, "work {work} for {a} vs {b}");
        // Extraction of a boxed answer returns the box content verbatim.
        prop_assert_eq!(v.extracted.as_deref(), Some(a.trim()));
    }

    #[test]
    fn unreduced_fractions_equal_reduced_ones(a in -10_000i64..10_000, b in 1i64..10_000, k in 1i64..1_000) {
        let o = opts();
        let unreduced = format!("\\frac{{{}}}{{{}}}", a * k, b * k);
        let reduced = format!("{a}/{b}");
        let other = format!("{}/{b}", a + 1);
        prop_assert!(answers_equal(&unreduced, &reduced, &o));
        prop_assert!(!answers_equal(&unreduced, &other, &o));
    }

    #[test]
    fn polynomial_identities_hold(a in -50i64..50, b in -50i64..50) {
        // (x + a)(x + b) = x^2 + (a+b) x + ab, and changing the constant term breaks it.
        let o = opts();
        let factored = format!("(x + {a})(x + {b})");
        let expanded = format!("x^2 + {}x + {}", a + b, a * b);
        let expanded = expanded.replace("+ -", "- ");
        let wrong = format!("x^2 + {}x + {}", a + b, a * b + 1).replace("+ -", "- ");
        prop_assert!(answers_equal(&factored, &expanded, &o));
        prop_assert!(!answers_equal(&factored, &wrong, &o));
    }
}

#[test]
fn hostile_inputs_are_bounded() {
    let o = opts();
    let c = Checker::new(o.clone());
    let cases = [
        format!("\\boxed{{{}}}", "{".repeat(1_000_000)),
        format!(
            "\\boxed{{{}1{}}}",
            "\\frac{".repeat(5_000),
            "}{2}".repeat(5_000)
        ),
        "\\boxed{2^{2^{2^{99}}}}".to_string(),
        "\\boxed{(x+1)^{100000}}".to_string(),
        "\\boxed{99999999999!}".to_string(),
        format!("\\boxed{{{}}}", "x+".repeat(100_000)),
        format!("\\boxed{{{}}}", "(x+1)".repeat(400)),
        "x".repeat(1 << 20),
    ];
    for pred in &cases {
        let (v, work) = c.check_with_work(pred, "2");
        assert!(!v.correct);
        assert!(
            work <= o.work_limit,
            "work {work} over the limit for input of {} bytes",
            pred.len()
        );
    }
}
