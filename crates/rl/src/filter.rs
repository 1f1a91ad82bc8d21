//! Dropping uninformative groups before the update.
//!
//! A group whose advantages are all zero (every rollout equally right or wrong) contributes
//! nothing to the policy gradient, but still contributes KL and entropy gradients. When every
//! group is like that, AdamW would normalise those tiny gradients into full-size steps (observed
//! in docs/LAB.md, "Before the lab": entropy rose and reasoning garbled), so the caller should
//! skip the step.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// What to do with a batch after filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupFilter {
    /// Train on these rows (indices into the batch, ascending); `dropped_groups` were removed.
    Keep {
        rows: Vec<usize>,
        dropped_groups: usize,
    },
    /// No group carries a signal: do not update this step.
    SkipStep { dropped_groups: usize },
}

/// Keeps the rows of groups with at least one non-zero advantage.
pub fn drop_zero_advantage_groups(
    seq_advantages: &[f32],
    group_of: &[usize],
) -> Result<GroupFilter> {
    if seq_advantages.len() != group_of.len() {
        bail!(
            "drop_zero_advantage_groups: {} advantages but {} group labels",
            seq_advantages.len(),
            group_of.len()
        );
    }
    let mut informative: BTreeMap<usize, bool> = BTreeMap::new();
    for (&a, &g) in seq_advantages.iter().zip(group_of) {
        *informative.entry(g).or_default() |= a != 0.0;
    }
    let dropped_groups = informative.values().filter(|&&keep| !keep).count();
    let rows: Vec<usize> = (0..group_of.len())
        .filter(|&i| informative[&group_of[i]])
        .collect();
    Ok(if rows.is_empty() {
        GroupFilter::SkipStep { dropped_groups }
    } else {
        GroupFilter::Keep {
            rows,
            dropped_groups,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_groups_with_signal() {
        let adv = [0.0, 0.0, 0.7, -0.7, 0.0, 0.0];
        let groups = [0, 0, 1, 1, 2, 2];
        assert_eq!(
            drop_zero_advantage_groups(&adv, &groups).unwrap(),
            GroupFilter::Keep {
                rows: vec![2, 3],
                dropped_groups: 2
            }
        );
    }

    #[test]
    fn all_zero_means_skip() {
        let r = drop_zero_advantage_groups(&[0.0; 4], &[0, 0, 1, 1]).unwrap();
        assert_eq!(r, GroupFilter::SkipStep { dropped_groups: 2 });
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert!(drop_zero_advantage_groups(&[0.0; 3], &[0, 0]).is_err());
    }
}
