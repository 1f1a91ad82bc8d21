//! What a run carries from step to step besides the weights: the step counter, HAPO's length
//! history and the per-example rollout accuracy history. All of it goes into checkpoints.

use std::collections::BTreeMap;

use oneshot_data::select::History;
use oneshot_rl::hapo::HapoHistory;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Steps completed.
    pub step: usize,
    pub hapo: HapoHistory,
    /// Per example (`extra_info.index`): the fraction of its rollouts that were correct, one
    /// entry per finished epoch (the format of `acc_step_500.json`).
    pub accuracy: History,
    /// Correct and total rollouts per example in the running epoch.
    pub epoch_counts: BTreeMap<i64, (usize, usize)>,
    /// The epoch the counts belong to.
    pub epoch: usize,
}

impl RunState {
    /// Adds one step's outcomes; the step's rows started at data position `first_row` of a
    /// pass over `n_rows` rows. When the step finishes an epoch, the epoch's accuracies are
    /// appended to the history (a batch that straddles two epochs counts toward the first).
    pub fn record_outcomes(
        &mut self,
        outcomes: &[(i64, bool)],
        first_row: usize,
        batch: usize,
        n_rows: usize,
    ) {
        for &(index, correct) in outcomes {
            let c = self.epoch_counts.entry(index).or_default();
            c.0 += correct as usize;
            c.1 += 1;
        }
        let epoch_after = (first_row + batch) / n_rows;
        if epoch_after > self.epoch {
            self.close_epoch();
            self.epoch = epoch_after;
        }
    }

    /// The history with the running epoch's accuracies appended (the state is unchanged).
    pub fn accuracy_so_far(&self) -> History {
        let mut s = self.clone();
        s.close_epoch();
        s.accuracy
    }

    /// Appends the running epoch's accuracies to the history.
    pub fn close_epoch(&mut self) {
        for (index, (correct, total)) in std::mem::take(&mut self.epoch_counts) {
            if total > 0 {
                self.accuracy
                    .entry(index)
                    .or_default()
                    .push(correct as f64 / total as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_close_into_the_history() {
        let mut s = RunState::default();
        // 4 rows, batch 2: epoch 0 ends after the second step.
        s.record_outcomes(&[(7, true), (7, false)], 0, 2, 4);
        assert!(s.accuracy.is_empty());
        s.record_outcomes(&[(9, true), (9, true)], 2, 2, 4);
        assert_eq!(s.accuracy[&7], vec![0.5]);
        assert_eq!(s.accuracy[&9], vec![1.0]);
        assert!(s.epoch_counts.is_empty());
        assert_eq!(s.epoch, 1);
    }
}
