//! The judge reads the working of hand-written responses (direct, slipped, checked), and the
//! rates aggregate over families.
use oneshot_lab::{Family, Judged, LabJudge, LabScores, Rates};

fn gold_steps() -> Vec<String> {
    [
        "First, 12 + 7 = 19.",
        "Then 19 * 3 = 57.",
        "Finally, 57 - 5 = 52.",
    ]
    .map(String::from)
    .to_vec()
}

fn judge(response: &str) -> Judged {
    LabJudge::default().judge(response, "52", &gold_steps())
}

#[test]
fn a_correct_worked_response_has_no_slip() {
    let j = judge(
        "Working:\nFirst, 12 + 7 = 19.\nThen 19 * 3 = 57.\nFinally, 57 - 5 = 52.\nThe final answer is \\boxed{52}.",
    );
    assert!(j.strict && j.lenient && j.boxed);
    assert!(!j.direct && !j.checked);
    assert_eq!(j.slipped, Some(false));
    // Without the opener the step lines still make it a worked response.
    let j =
        judge("First, 12 + 7 = 19.\nThen 19 * 3 = 57.\nFinally, 57 - 5 = 52.\nThe answer is 52.");
    assert!(!j.direct && j.lenient && !j.strict);
    assert_eq!(j.slipped, Some(false));
}

#[test]
fn a_wrong_value_in_a_step_is_a_slip() {
    let j = judge(
        "Working:\nFirst, 12 + 7 = 19.\nThen 19 * 3 = 58.\nFinally, 58 - 5 = 53.\nThe answer is 53.",
    );
    assert!(!j.direct && !j.lenient);
    assert_eq!(j.slipped, Some(true));
    // A slip is seen in the working even when the answer line happens to be right.
    let j = judge(
        "Working:\nFirst, 12 + 7 = 18.\nThen 19 * 3 = 57.\nFinally, 57 - 5 = 52.\nThe answer is 52.",
    );
    assert!(j.lenient);
    assert_eq!(j.slipped, Some(true));
}

#[test]
fn a_missing_or_extra_step_is_a_slip() {
    let missing = judge("Working:\nFirst, 12 + 7 = 19.\nFinally, 57 - 5 = 52.\nx = 52.");
    assert!(!missing.direct);
    assert_eq!(missing.slipped, Some(true));
    let extra = judge(
        "Working:\nFirst, 12 + 7 = 19.\nThen 19 * 3 = 57.\nFinally, 57 - 5 = 52.\nSo 52 + 0 = 52.\nThe answer is 52.",
    );
    assert_eq!(extra.slipped, Some(true));
}

#[test]
fn a_direct_response_has_no_measured_working() {
    let j = judge("At a glance:\nThe answer is 52.");
    assert!(j.direct && j.lenient && !j.checked);
    assert_eq!(j.slipped, None);
    // No opener and only an answer line: direct too.
    let j = judge("The final answer is \\boxed{51}.");
    assert!(j.direct && !j.lenient);
    assert_eq!(j.slipped, None);
    // Working, but the gold working is unknown (an old benchmark file): not measured.
    let j = LabJudge::default().judge(
        "Working:\nFirst, 12 + 7 = 19.\nThe answer is 52.",
        "52",
        &[],
    );
    assert!(!j.direct);
    assert_eq!(j.slipped, None);
}

#[test]
fn a_check_line_is_seen_and_is_not_a_step() {
    let j = judge(
        "Working:\nFirst, 12 + 7 = 19.\nThen 19 * 3 = 57.\nFinally, 57 - 5 = 52.\nCheck: 52 + 5 = 57.\nThe final answer is \\boxed{52}.",
    );
    assert!(j.checked && j.strict && !j.direct);
    assert_eq!(j.slipped, Some(false));
}

fn judged(strict: bool, direct: bool, slipped: Option<bool>, checked: bool) -> Judged {
    Judged {
        strict,
        lenient: strict,
        boxed: strict,
        direct,
        slipped,
        checked,
    }
}

#[test]
fn excluding_a_family_aggregates_the_others() {
    let items = vec![
        (Family::Arithmetic, judged(true, false, Some(false), true)),
        (Family::Arithmetic, judged(true, false, Some(false), true)),
        (Family::Linear, judged(false, true, None, false)),
        (Family::Linear, judged(true, false, Some(true), false)),
        (Family::Linear, judged(false, false, Some(true), true)),
        (Family::Modular, judged(true, true, None, false)),
        (Family::Modular, judged(false, false, Some(false), false)),
    ];
    let scores = LabScores::new(&items);
    let others: Vec<&Judged> = items
        .iter()
        .filter(|(f, _)| *f != Family::Arithmetic)
        .map(|(_, j)| j)
        .collect();
    let want = Rates::of(others);
    let got = scores.excluding(Family::Arithmetic);
    assert_eq!(got, want);
    assert_eq!((got.n, got.worked_n), (5, 3));
    assert!((got.strict - 2.0 / 5.0).abs() < 1e-12);
    assert!((got.direct - 2.0 / 5.0).abs() < 1e-12);
    assert!((got.slip - 2.0 / 3.0).abs() < 1e-12);
    assert!((got.checked - 1.0 / 5.0).abs() < 1e-12);
    // Excluding a family that is absent leaves everything.
    assert_eq!(scores.excluding(Family::Units), scores.all);
    // The table shows the working columns.
    let table = scores.table();
    assert!(
        table.contains("| direct % | checked % | worked | slip % |"),
        "{table}"
    );
    assert!(
        table.contains("| all | 7 | 57.1 | 57.1 | 57.1 | 28.6 | 42.9 | 5 | 40.0 |"),
        "{table}"
    );
}

#[test]
fn rates_without_measured_working_have_zero_slip() {
    let r = Rates::of(&[judged(true, true, None, false)]);
    assert_eq!((r.worked_n, r.slip, r.direct), (0, 0.0, 1.0));
    assert_eq!(Rates::of(&Vec::<Judged>::new()), Rates::default());
}
