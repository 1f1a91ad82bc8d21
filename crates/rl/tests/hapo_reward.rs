//! HAPO's history-aware length reward and the reward composition, on hand-computed histories.

use oneshot_rl::hapo::{length_reward, HapoHistory, LengthSample};
use oneshot_rl::reward::{reward_batch, ResponseOutcome, RewardConfig};

const C45: f64 = std::f64::consts::FRAC_1_SQRT_2; // cos(pi/4)

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-12, "{what}: got {got}, want {want}");
}

#[test]
fn length_reward_formula() {
    assert_eq!(length_reward(10, None, true), 0.0);
    assert_eq!(length_reward(10, None, false), 0.0);
    close(length_reward(50, Some(100), true), C45, "half the history");
    close(length_reward(100, Some(100), true), 0.0, "at the history");
    close(length_reward(200, Some(100), true), -0.7, "correct floor");
    close(
        length_reward(500, Some(100), true),
        -0.7,
        "ratio capped at 2",
    );
    close(
        length_reward(50, Some(100), false),
        0.0,
        "incorrect never positive",
    );
    close(
        length_reward(150, Some(100), false),
        -C45,
        "incorrect and long",
    );
    close(
        length_reward(500, Some(100), false),
        -1.0,
        "incorrect, capped",
    );
    close(
        length_reward(0, Some(0), true),
        1.0,
        "empty history, empty answer",
    );
}

#[test]
fn batches_are_scored_against_the_previous_history() {
    let mut h = HapoHistory::new();
    let s = |problem, len, correct| LengthSample {
        problem,
        len,
        correct,
    };
    // Batch 1: no history yet -> all zero; afterwards h(a) = 80, b stays unset (never correct).
    let r = h.score_batch(&[
        s("a", 120, true),
        s("a", 80, true),
        s("a", 60, false),
        s("b", 30, false),
    ]);
    assert_eq!(r, vec![0.0; 4]);
    assert_eq!(h.get("a"), Some(80));
    assert_eq!(h.get("b"), None);
    // Batch 2 against h = 80 (not the 40 found inside the batch).
    let r = h.score_batch(&[
        s("a", 40, true),
        s("a", 160, true),
        s("a", 100, false),
        s("b", 30, true),
    ]);
    close(r[0], C45, "40 vs 80");
    close(r[1], -0.7, "160 vs 80");
    close(
        r[2],
        (std::f64::consts::FRAC_PI_2 * 1.25).cos(),
        "100 vs 80, incorrect",
    );
    close(r[3], 0.0, "b had no history before this batch");
    assert_eq!((h.get("a"), h.get("b")), (Some(40), Some(30)));
    // Batch 3: a longer correct answer does not raise the history.
    let r = h.score_batch(&[s("a", 40, true), s("a", 90, true)]);
    close(r[0], 0.0, "40 vs 40");
    assert_eq!(h.get("a"), Some(40));
    assert_eq!(h.len(), 2);
}

#[test]
fn history_round_trips_through_json() {
    let mut h = HapoHistory::new();
    h.score_batch(&[LengthSample {
        problem: "12",
        len: 77,
        correct: true,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapo.json");
    h.save(&path).unwrap();
    let back = HapoHistory::load(&path).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.get("12"), Some(77));
    let err = HapoHistory::from_json("{\"shortest_correct\": {\"a\": -3}}").unwrap_err();
    assert!(format!("{err:#}").contains("HAPO history"), "{err:#}");
}

#[test]
fn reward_composes_correctness_format_and_length() {
    let cfg = RewardConfig {
        correct_value: 1.0,
        format_value: Some(0.2),
        length_weight: Some(0.5),
    };
    let mut h = HapoHistory::new();
    let resp = |text, len, correct| ResponseOutcome {
        problem: "p",
        text,
        len_tokens: len,
        correct,
    };
    let first = reward_batch(
        &cfg,
        &mut h,
        &[resp("\\boxed{3}", 100, true), resp("3", 50, false)],
    );
    assert_eq!(first[0].total, 1.2, "no history yet: correctness + format");
    assert_eq!(first[1].total, 0.0);
    let second = reward_batch(
        &cfg,
        &mut h,
        &[resp("\\boxed{3}", 50, true), resp("no box", 200, false)],
    );
    close(second[0].length, C45, "length part");
    close(second[0].total, 1.0 + 0.2 + 0.5 * C45, "total");
    close(second[1].total, -0.5, "wrong, unboxed and long: w * (-1)");
}

#[test]
fn paper_reward_is_plain_correctness() {
    let cfg = RewardConfig::default();
    let mut h = HapoHistory::new();
    let out = reward_batch(
        &cfg,
        &mut h,
        &[ResponseOutcome {
            problem: "p",
            text: "\\boxed{1}",
            len_tokens: 5,
            correct: false,
        }],
    );
    assert_eq!(out[0].total, 0.0, "no format reward by default");
    assert!(
        h.is_empty(),
        "history untouched when the length reward is off"
    );
}
