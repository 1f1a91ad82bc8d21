//! Advantage estimators on hand-computed groups and trajectories.

use oneshot_rl::advantages::{
    contiguous_groups, dr_grpo, expand_to_tokens, gae, grpo, masked_whiten, outcome_token_rewards,
    reinforce_plus_plus, rloo,
};
use oneshot_rl::TokenGrid;

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

fn grid(rows: &[&[f32]]) -> TokenGrid {
    TokenGrid::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn grpo_normalises_each_group_by_its_unbiased_std() {
    // Group 0: [1, 0, 0, 1] -> mean 0.5, unbiased std sqrt(1/3); group 1 all correct.
    let scores = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let groups = contiguous_groups(8, 4).unwrap();
    let a = grpo(&scores, &groups).unwrap();
    let v = 0.5 / ((1.0f64 / 3.0).sqrt() + 1e-6);
    let v = v as f32;
    close(&a, &[v, -v, -v, v, 0.0, 0.0, 0.0, 0.0], 1e-6, "grpo");
    assert!(
        a[4..].iter().all(|&x| x == 0.0),
        "all-equal group is exactly zero"
    );
}

#[test]
fn all_equal_rewards_give_zero_advantage_without_nan() {
    for r in [0.0f32, 1.0, 0.1, 0.7] {
        let scores = [r; 6];
        let groups = contiguous_groups(6, 3).unwrap();
        for (name, a) in [
            ("grpo", grpo(&scores, &groups).unwrap()),
            ("dr_grpo", dr_grpo(&scores, &groups).unwrap()),
            ("rloo", rloo(&scores, &groups).unwrap()),
        ] {
            assert!(
                a.iter().all(|&x| x == 0.0),
                "{name} with all rewards {r}: {a:?}"
            );
        }
    }
}

#[test]
fn group_of_one_uses_mean_zero_std_one() {
    // verl: a singleton group gets mean 0 and std 1 -> A = r / (1 + 1e-6).
    let a = grpo(&[1.0, 0.0], &[0, 1]).unwrap();
    close(&a, &[1.0 / (1.0 + 1e-6), 0.0], 1e-7, "grpo singleton");
    assert_eq!(dr_grpo(&[0.7], &[3]).unwrap(), vec![0.7]);
    assert_eq!(rloo(&[0.7], &[3]).unwrap(), vec![0.7]);
}

#[test]
fn groups_are_found_by_label_not_position() {
    let a = dr_grpo(&[1.0, 0.0, 0.0, 0.0], &[5, 9, 5, 9]).unwrap();
    close(&a, &[0.5, 0.0, -0.5, 0.0], 0.0, "dr_grpo interleaved");
}

#[test]
fn dr_grpo_centres_without_dividing() {
    let a = dr_grpo(&[1.0, 0.0, 0.0, 1.0], &[0, 0, 0, 0]).unwrap();
    close(&a, &[0.5, -0.5, -0.5, 0.5], 0.0, "dr_grpo");
}

#[test]
fn rloo_subtracts_the_mean_of_the_others() {
    // [1, 0, 0]: 1 - mean(0, 0) = 1; 0 - mean(1, 0) = -0.5.
    let a = rloo(&[1.0, 0.0, 0.0, 0.2, 0.6], &[0, 0, 0, 1, 1]).unwrap();
    close(&a, &[1.0, -0.5, -0.5, -0.4, 0.4], 1e-6, "rloo");
}

#[test]
fn expansion_copies_onto_response_tokens_only() {
    let mask = grid(&[&[1.0, 1.0, 0.0], &[1.0, 0.0, 0.0]]);
    let t = expand_to_tokens(&[0.5, -2.0], &mask).unwrap();
    assert_eq!(t.data, vec![0.5, 0.5, 0.0, -2.0, 0.0, 0.0]);
    assert!(expand_to_tokens(&[0.5], &mask).is_err());
}

#[test]
fn outcome_reward_sits_on_the_last_response_token() {
    let mask = grid(&[&[1.0, 1.0, 0.0], &[0.0, 0.0, 0.0], &[1.0, 1.0, 1.0]]);
    let r = outcome_token_rewards(&[1.0, 1.0, 0.5], &mask).unwrap();
    assert_eq!(r.data, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]);
}

#[test]
fn reinforce_pp_whitens_discounted_returns_over_the_batch() {
    let mask = grid(&[&[1.0, 1.0, 1.0, 0.0], &[1.0, 1.0, 0.0, 0.0]]);
    let rewards = grid(&[&[0.0, 0.0, 1.0, 0.0], &[0.0, 0.0, 0.0, 0.0]]);
    let (adv, ret) = reinforce_plus_plus(&rewards, &mask, 1.0).unwrap();
    assert_eq!(ret.row(0), &[1.0, 1.0, 1.0, 0.0]);
    // Masked returns [1, 1, 1, 0, 0]: mean 0.6, unbiased var 0.3.
    let s = (0.3f64 + 1e-8).sqrt();
    let (p, n) = ((0.4 / s) as f32, (-0.6 / s) as f32);
    close(
        &adv.data,
        &[p, p, p, 0.0, n, n, 0.0, 0.0],
        1e-6,
        "reinforce++",
    );
}

#[test]
fn reinforce_pp_discounts_and_resets_at_padding() {
    let mask = grid(&[&[1.0, 1.0, 1.0, 0.0]]);
    // A reward written on a padding position must not leak into the response.
    let rewards = grid(&[&[0.0, 0.0, 1.0, 5.0]]);
    let (_, ret) = reinforce_plus_plus(&rewards, &mask, 0.5).unwrap();
    assert_eq!(&ret.row(0)[..3], &[0.25, 0.5, 1.0]);
}

#[test]
fn whitening_of_constant_or_single_values_is_zero() {
    let mask = grid(&[&[1.0, 1.0, 0.0]]);
    let w = masked_whiten(&grid(&[&[0.3, 0.3, 9.0]]), &mask).unwrap();
    assert_eq!(w.data, vec![0.0, 0.0, 0.0]);
    let w = masked_whiten(&grid(&[&[0.3, 2.0, 9.0]]), &grid(&[&[1.0, 0.0, 0.0]])).unwrap();
    assert_eq!(w.data, vec![0.0, 0.0, 0.0]);
    assert!(w.data.iter().all(|x| x.is_finite()));
}

#[test]
fn gae_matches_hand_computation() {
    let mask = grid(&[&[1.0, 1.0]]);
    let rewards = grid(&[&[0.0, 1.0]]);
    let values = grid(&[&[0.5, 0.2]]);
    // gamma 0.9, lam 0.5: A1 = 1 - 0.2 = 0.8; A0 = (0.9 * 0.2 - 0.5) + 0.45 * 0.8 = 0.04.
    let (adv, ret) = gae(&rewards, &values, &mask, 0.9, 0.5).unwrap();
    close(&ret.data, &[0.54, 1.0], 1e-6, "gae returns");
    // Whitened [0.04, 0.8]: mean 0.42, unbiased var 2 * 0.38^2.
    let s = (2.0f64 * 0.38 * 0.38 + 1e-8).sqrt();
    close(
        &adv.data,
        &[(-0.38 / s) as f32, (0.38 / s) as f32],
        1e-5,
        "gae advantages",
    );
}

#[test]
fn gae_does_not_bootstrap_from_padding_values() {
    let mask = grid(&[&[1.0, 0.0]]);
    let (_, ret) = gae(
        &grid(&[&[1.0, 0.0]]),
        &grid(&[&[0.5, 9.0]]),
        &mask,
        1.0,
        1.0,
    )
    .unwrap();
    assert_eq!(
        ret.data[0], 1.0,
        "return = reward, the padded value 9 is ignored"
    );
}

#[test]
fn shape_mismatches_are_reported() {
    let mask = grid(&[&[1.0, 1.0]]);
    let err = gae(&grid(&[&[1.0]]), &mask, &mask, 1.0, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gae rewards"), "{err}");
}
