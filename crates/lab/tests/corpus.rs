//! Corpus mix rates within tolerance of the configured knobs, the two solution styles and
//! their re-check lines, and held-out questions excluded.
use oneshot_lab::calc::{q, Q};
use oneshot_lab::corpus::check_line;
use oneshot_lab::splits::held_out_questions;
use oneshot_lab::{AnswerForm, Corpus, CorpusConfig, Document, Family, LabJudge, Style};
use std::collections::HashSet;

#[test]
fn mix_rates_match_the_knobs() {
    let cfg = CorpusConfig::default();
    let corpus = Corpus::new(cfg.clone(), 11, HashSet::new()).unwrap();
    let n = 6000;
    let docs: Vec<_> = (0..n).map(|i| corpus.document(i)).collect();
    let rate = |k: usize, of: usize| k as f64 / of.max(1) as f64;
    let slipped = docs.iter().filter(|d| d.task.slipped).count();
    // A few slips cannot change the answer (division-only problems), so the rate is a bit lower.
    let s = rate(slipped, n as usize);
    let want = cfg.slip_rate;
    assert!(
        s <= want + 0.01 && s >= want * 0.75,
        "slip rate {s} vs knob {want}"
    );
    for f in Family::ALL {
        let of: Vec<_> = docs.iter().filter(|d| d.task.family == f).collect();
        assert!(
            (of.len() as f64 / n as f64 - 1.0 / 6.0).abs() < 0.02,
            "{f} share {}",
            of.len()
        );
        let boxed = rate(
            of.iter().filter(|d| d.form == AnswerForm::Boxed).count(),
            of.len(),
        );
        assert!(
            (boxed - cfg.boxed_rate_of(f)).abs() < 0.04,
            "{f} boxed rate {boxed} vs {}",
            cfg.boxed_rate_of(f)
        );
    }
    let unboxed: Vec<_> = docs
        .iter()
        .filter(|d| d.form != AnswerForm::Boxed)
        .collect();
    let answer_is = rate(
        unboxed
            .iter()
            .filter(|d| d.form == AnswerForm::AnswerIs)
            .count(),
        unboxed.len(),
    );
    assert!(
        (answer_is - 0.5).abs() < 0.03,
        "answer-is share {answer_is}"
    );
    // The text says what the form says.
    for d in &docs[..200] {
        assert_eq!(d.solution.contains("\\boxed{"), d.form == AnswerForm::Boxed);
        assert!(d
            .user
            .ends_with("Let's think step by step and output the final answer within \\boxed{}."));
    }
}

#[test]
fn corpus_is_deterministic_and_skips_held_out_questions() {
    let held = held_out_questions(0).unwrap();
    let a = Corpus::new(CorpusConfig::default(), 0, held.clone()).unwrap();
    let b = Corpus::new(CorpusConfig::default(), 0, held.clone()).unwrap();
    for i in 0..3000 {
        let d = a.document(i);
        assert_eq!(d, b.document(i));
        assert!(
            !held.contains(&d.task.question),
            "held-out question in the corpus: {}",
            d.task.question
        );
    }
}

#[test]
fn bad_knobs_are_named() {
    let named = |cfg: CorpusConfig, field: &str| {
        let e = Corpus::new(cfg, 0, HashSet::new())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(field), "{e}");
    };
    named(
        CorpusConfig {
            slip_rate: 1.5,
            ..CorpusConfig::default()
        },
        "slip_rate",
    );
    named(
        CorpusConfig {
            direct_rate: -0.1,
            ..CorpusConfig::default()
        },
        "direct_rate",
    );
    named(
        CorpusConfig {
            check_rate: f64::NAN,
            ..CorpusConfig::default()
        },
        "check_rate",
    );
}

fn documents(seed: u64, n: u64) -> (CorpusConfig, Vec<Document>) {
    let cfg = CorpusConfig::default();
    let corpus = Corpus::new(cfg.clone(), seed, HashSet::new()).unwrap();
    (cfg, (0..n).map(|i| corpus.document(i)).collect())
}

/// A worked solution without a slip whose last operation can be re-checked.
fn checkable(d: &Document) -> bool {
    d.style == Style::Worked && !d.task.slipped && check_line(&d.task).is_some()
}

#[test]
fn direct_and_checked_shares_match_the_knobs() {
    let (cfg, docs) = documents(13, 4000);
    let share = |k: usize, of: usize| k as f64 / of.max(1) as f64;
    let direct = docs.iter().filter(|d| d.style == Style::Direct).count();
    let s = share(direct, docs.len());
    assert!((s - cfg.direct_rate).abs() < 0.03, "direct share {s}");
    for f in Family::ALL {
        let of: Vec<_> = docs.iter().filter(|d| d.task.family == f).collect();
        let s = share(
            of.iter().filter(|d| d.style == Style::Direct).count(),
            of.len(),
        );
        assert!((s - cfg.direct_rate).abs() < 0.06, "{f} direct share {s}");
        assert!(
            of.iter().any(|d| d.checked),
            "{f}: no document re-checks its working"
        );
    }
    let can: Vec<_> = docs.iter().filter(|d| checkable(d)).collect();
    let s = share(can.iter().filter(|d| d.checked).count(), can.len());
    assert!((s - cfg.check_rate).abs() < 0.04, "check share {s}");
    assert!(
        docs.iter().all(|d| !d.checked || checkable(d)),
        "a direct or slipped solution has a re-check"
    );
    // Both knobs move the shares.
    let corpus = Corpus::new(
        CorpusConfig {
            direct_rate: 0.0,
            check_rate: 1.0,
            ..cfg
        },
        13,
        HashSet::new(),
    )
    .unwrap();
    for i in 0..300 {
        let d = corpus.document(i);
        assert_eq!(d.style, Style::Worked);
        assert_eq!(d.checked, checkable(&d));
    }
}

#[test]
fn styles_follow_the_layout_and_the_judge_reads_it_back() {
    let (_, docs) = documents(17, 2000);
    let judge = LabJudge::default();
    for d in &docs {
        let lines: Vec<&str> = d.solution.lines().collect();
        let steps = &d.task.steps;
        let ending = *lines.last().unwrap();
        match d.style {
            Style::Direct => assert_eq!(lines, ["At a glance:", ending], "{}", d.solution),
            Style::Worked => {
                assert_eq!(lines[0], "Working:", "{}", d.solution);
                assert_eq!(&lines[1..=steps.len()], steps.as_slice(), "{}", d.solution);
                let rest = &lines[steps.len() + 1..lines.len() - 1];
                let want: Vec<String> = check_line(&d.task)
                    .filter(|_| d.checked)
                    .into_iter()
                    .collect();
                assert_eq!(rest, want.as_slice(), "{}", d.solution);
            }
        }
        let j = judge.judge(&d.solution, &d.task.gold_text(), steps);
        assert_eq!(j.direct, d.style == Style::Direct, "{}", d.solution);
        assert_eq!(j.checked, d.checked, "{}", d.solution);
        assert_eq!(j.lenient, !d.task.slipped, "{}", d.solution);
        let measured = (d.style == Style::Worked).then_some(false);
        assert_eq!(j.slipped, measured, "{}", d.solution);
    }
}

/// `7`, `-3`, `7/3`, `(-3)`, `(3/5)`.
fn rational(s: &str) -> Q {
    let s = s.trim_start_matches('(').trim_end_matches(')');
    match s.split_once('/') {
        Some((n, d)) => Q::new(n.parse().unwrap(), d.parse().unwrap()),
        None => q(s.parse().unwrap()),
    }
}

#[test]
fn every_check_line_is_right_and_undoes_the_last_operation() {
    let (_, docs) = documents(19, 3000);
    let mut seen = 0;
    for d in docs.iter().filter(|d| d.checked) {
        let line = d
            .solution
            .lines()
            .find(|l| l.starts_with("Check: "))
            .unwrap_or_else(|| panic!("no check line:\n{}", d.solution));
        let body = line
            .strip_prefix("Check: ")
            .and_then(|b| b.strip_suffix('.'))
            .unwrap();
        let (lhs, rhs) = body.split_once(" = ").unwrap();
        let (op, (a, b)) = [" + ", " - ", " / "]
            .iter()
            .find_map(|op| lhs.split_once(op).map(|ab| (op.trim(), ab)))
            .unwrap_or_else(|| panic!("no operator in {line}"));
        let (a, b, want) = (rational(a), rational(b), rational(rhs));
        let got = match op {
            "+" => a + b,
            "-" => a - b,
            _ => a / b,
        };
        assert_eq!(got, want, "wrong check: {line}");
        // It starts from the last operation's result and lands on one of its operands.
        let last = d.task.last_op.unwrap();
        assert_eq!(a, last.result, "{line} after {last:?}");
        assert!(want == last.a || want == last.b, "{line} after {last:?}");
        seen += 1;
    }
    assert!(seen > 200, "only {seen} checked documents");
}
