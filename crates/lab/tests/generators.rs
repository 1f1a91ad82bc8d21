//! Generator determinism and answer correctness: the project checker must agree with each
//! family's own computed answer, in every final-answer form the corpus uses.
use oneshot_lab::corpus::render_solution;
use oneshot_lab::rng::{item_rng, Purpose};
use oneshot_lab::task::{sample_slipped_task, sample_task, DIFFICULTIES};
use oneshot_lab::{AnswerForm, Family, LabJudge, Style};
use oneshot_verify::{Checker, CheckerOptions};

#[test]
fn same_seed_same_tasks_other_seed_other_tasks() {
    for family in Family::ALL {
        for d in DIFFICULTIES {
            let a = sample_task(family, d, &mut item_rng(1, Purpose::Pool, 5));
            let b = sample_task(family, d, &mut item_rng(1, Purpose::Pool, 5));
            assert_eq!(a, b, "{family} level {d} is not deterministic");
            let differs = (0..20).any(|i| {
                sample_task(family, d, &mut item_rng(2, Purpose::Pool, i)).question != a.question
            });
            assert!(
                differs,
                "{family} level {d}: other seeds give the same question"
            );
        }
    }
}

#[test]
fn checker_agrees_with_every_computed_answer_in_every_form() {
    let strict = Checker::new(CheckerOptions {
        boxed_only: true,
        ..CheckerOptions::default()
    });
    let judge = LabJudge::default();
    let mut fractions = 0;
    for family in Family::ALL {
        for d in DIFFICULTIES {
            for i in 0..60 {
                let t = sample_task(family, d, &mut item_rng(3, Purpose::Pool, i));
                let gold = t.gold_text();
                fractions += gold.contains('/') as usize;
                // The gold answer is what the solution computed, and the last step states it.
                assert_eq!(t.solution_answer, t.gold);
                let boxed = render_solution(&t, Style::Worked, AnswerForm::Boxed, false);
                assert!(
                    strict.check(&boxed, &gold).correct,
                    "strict checker rejects {gold:?} in\n{boxed}"
                );
                for form in [AnswerForm::Boxed, AnswerForm::AnswerIs, AnswerForm::Bare] {
                    let text = render_solution(&t, Style::Worked, form, false);
                    let j = judge.judge(&text, &gold, &t.steps);
                    assert!(
                        j.lenient,
                        "lenient metric rejects a correct {form:?} solution ({gold:?}):\n{text}"
                    );
                    assert_eq!(
                        j.strict,
                        form == AnswerForm::Boxed,
                        "strict must be exactly the boxed form:\n{text}"
                    );
                    assert_eq!(j.boxed, form == AnswerForm::Boxed);
                }
                // A different answer is rejected by both metrics.
                let off = oneshot_lab::calc::fmt_q(t.gold + oneshot_lab::calc::q(1));
                let text = format!(
                    "{}\nThe final answer is \\boxed{{{off}}}.",
                    t.steps.join("\n")
                );
                let j = judge.judge(&text, &gold, &t.steps);
                assert!(
                    !j.strict && !j.lenient,
                    "wrong answer {off} accepted for gold {gold}:\n{text}"
                );
            }
        }
    }
    assert!(
        fractions > 50,
        "linear/fraction families should produce fraction answers, got {fractions}"
    );
}

#[test]
fn slipped_solutions_keep_the_question_and_end_wrong() {
    let judge = LabJudge::default();
    let mut slipped = 0;
    for family in Family::ALL {
        for i in 0..40 {
            let clean = sample_task(family, 2, &mut item_rng(4, Purpose::Corpus, i));
            let t = sample_slipped_task(
                family,
                2,
                &mut item_rng(4, Purpose::Corpus, i),
                &mut item_rng(4, Purpose::Slip, i),
            );
            assert_eq!(t.question, clean.question);
            assert_eq!(t.gold, clean.gold);
            if t.slipped {
                slipped += 1;
                assert_ne!(t.solution_answer, t.gold);
                let text = render_solution(&t, Style::Worked, AnswerForm::Boxed, false);
                let j = judge.judge(&text, &t.gold_text(), &clean.steps);
                assert!(
                    !j.strict && !j.lenient,
                    "a slipped solution scored as correct:\n{text}"
                );
                assert_eq!(
                    j.slipped,
                    Some(true),
                    "the judge misses the slip in the working:\n{text}"
                );
            }
        }
    }
    // Every family except the division-only tank problems can slip.
    assert!(slipped > 200, "only {slipped} of 240 tasks slipped");
}
