//! Corpus mix rates within tolerance of the configured knobs, and held-out questions excluded.
use oneshot_lab::splits::held_out_questions;
use oneshot_lab::{AnswerForm, Corpus, CorpusConfig, Family};
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
    let cfg = CorpusConfig {
        slip_rate: 1.5,
        ..CorpusConfig::default()
    };
    let e = Corpus::new(cfg, 0, HashSet::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("slip_rate"), "{e}");
}
