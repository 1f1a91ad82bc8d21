//! Choosing the training example(s): rank the pool by the historical variance score (docs/PAPER.md
//! §2) or at random, then build the few-shot training file by repeating the chosen rows.
//!
//! The history file is `{ "<extra_info.index>": [accuracy in epoch 1, epoch 2, ...], ... }`.
//! Score = population standard deviation of the list (same order as the variance). Ties are broken
//! by ascending index; see `mean_std` for how exact ties are kept exact.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::error::{DataError, IssueLog, Result};
use crate::verl::VerlRow;

/// Per-example accuracy history, keyed by the pool's `extra_info.index`.
pub type History = BTreeMap<i64, Vec<f64>>;

/// Reads a history json file; bad keys/values are reported by key.
pub fn read_history(path: &Path) -> Result<History> {
    let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| {
            DataError::format(
                path,
                format!("not a JSON object of index -> [accuracies]: {e}"),
            )
        })?;
    let mut log = IssueLog::new(path);
    let mut history = History::new();
    for (n, (key, value)) in raw.iter().enumerate() {
        // There are no lines to name in a JSON object: the entry's 1-based position stands in,
        // the field is the key.
        let entry = n + 1;
        let Ok(index) = key.parse::<i64>() else {
            log.push(entry, Some(key), "key is not an integer example index");
            continue;
        };
        let Some(items) = value.as_array() else {
            log.push(entry, Some(key), "value is not a list of accuracies");
            continue;
        };
        let accs: Option<Vec<f64>> = items
            .iter()
            .map(|v| v.as_f64().filter(|a| a.is_finite()))
            .collect();
        match accs {
            Some(accs) if !accs.is_empty() => {
                history.insert(index, accs);
            }
            Some(_) => log.push(entry, Some(key), "has no accuracies"),
            None => log.push(
                entry,
                Some(key),
                "holds a value that is not a finite number",
            ),
        }
    }
    log.finish(history)
}

/// Appends one epoch's accuracies (fraction of correct rollouts per example) to `history`:
/// what the trainer calls at the end of each epoch over the pool.
pub fn record_epoch(history: &mut History, accuracies: impl IntoIterator<Item = (i64, f64)>) {
    for (index, accuracy) in accuracies {
        history.entry(index).or_default().push(accuracy);
    }
}

/// Writes a history file in the same format as `acc_step_500.json` (4-space indented JSON, keys
/// in ascending index order). The trainer calls this with its per-epoch accuracies.
pub fn write_history(path: &Path, history: &History) -> Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = history
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&map, &mut ser).map_err(|e| DataError::Invalid(e.to_string()))?;
    let mut file = fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    file.write_all(&out).map_err(|e| DataError::io(path, e))
}

/// One ranked example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// 1-based rank: pi_rank.
    pub rank: usize,
    pub index: i64,
    /// Population standard deviation of the history (for `random`, still reported).
    pub score: f64,
    pub mean: f64,
    pub epochs: usize,
}

/// Population (mean, std) of `values`.
///
/// Computed as `sqrt(n*sum(x^2) - sum(x)^2) / n` over the sorted values: for accuracies that are
/// multiples of 1/8 (or any small dyadic fraction) every step is exact in f64, so examples whose
/// variances are mathematically equal (e.g. a history and its mirror 1 - x) tie exactly, as with
/// exact arithmetic, instead of being ordered by rounding noise. (DSR-sub ranks 14/15 are such
/// a tie.) Values are accuracies in [0, 1], so the cancellation of this form is harmless.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let sum: f64 = sorted.iter().sum();
    let sum_sq: f64 = sorted.iter().map(|v| v * v).sum();
    let spread = (n * sum_sq - sum * sum).max(0.0);
    (sum / n, spread.sqrt() / n)
}

fn ranked(order: impl IntoIterator<Item = (i64, f64, f64, usize)>) -> Vec<Ranked> {
    order
        .into_iter()
        .enumerate()
        .map(|(i, (index, score, mean, epochs))| Ranked {
            rank: i + 1,
            index,
            score,
            mean,
            epochs,
        })
        .collect()
}

/// Ranks every example of `history` by descending std (ties: ascending index).
pub fn rank_by_variance(history: &History) -> Vec<Ranked> {
    let mut scored: Vec<(i64, f64, f64, usize)> = history
        .iter()
        .map(|(&index, accs)| {
            let (mean, std) = mean_std(accs);
            (index, std, mean, accs.len())
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked(scored)
}

/// A seeded random order of `indices` (ChaCha8 from `seed`, shuffled after sorting the indices,
/// so the result does not depend on the input order). Scores come from `history` when known.
pub fn rank_random(indices: &[i64], seed: u64, history: Option<&History>) -> Vec<Ranked> {
    let mut order = indices.to_vec();
    order.sort_unstable();
    order.dedup();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    ranked(order.into_iter().map(|index| {
        let (mean, std, epochs) = match history.and_then(|h| h.get(&index)) {
            Some(accs) => {
                let (m, s) = mean_std(accs);
                (m, s, accs.len())
            }
            None => (f64::NAN, f64::NAN, 0),
        };
        (index, std, mean, epochs)
    }))
}

/// The pool indices at the given 1-based ranks.
pub fn indices_at_ranks(ranking: &[Ranked], ranks: &[usize]) -> Result<Vec<i64>> {
    ranks
        .iter()
        .map(|&r| {
            if r == 0 || r > ranking.len() {
                Err(DataError::Invalid(format!(
                    "rank {r} is out of range 1..={}",
                    ranking.len()
                )))
            } else {
                Ok(ranking[r - 1].index)
            }
        })
        .collect()
}

/// Builds the few-shot training rows: the pool rows with the chosen indices, each repeated in a
/// contiguous block, blocks in the order given, `repeat` rows in all. As in the paper's files
/// (`merge_pi1_pi13_r128`: 64 x pi_1 then 64 x pi_13); when `repeat` does not divide evenly the
/// first blocks get one row more.
pub fn repeat_rows(pool: &[VerlRow], chosen: &[i64], repeat: usize) -> Result<Vec<VerlRow>> {
    if chosen.is_empty() {
        return Err(DataError::Invalid("no example chosen".into()));
    }
    if repeat < chosen.len() {
        return Err(DataError::Invalid(format!(
            "--repeat {repeat} is smaller than the number of chosen examples ({})",
            chosen.len()
        )));
    }
    let mut by_index: HashMap<i64, &VerlRow> = HashMap::with_capacity(pool.len());
    for row in pool {
        if by_index.insert(row.index, row).is_some() {
            return Err(DataError::Invalid(format!(
                "the pool has extra_info.index {} more than once",
                row.index
            )));
        }
    }
    let mut out = Vec::with_capacity(repeat);
    let (per, extra) = (repeat / chosen.len(), repeat % chosen.len());
    for (block, index) in chosen.iter().enumerate() {
        let row = by_index.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "example {index} is not in the pool (no row with extra_info.index {index})"
            ))
        })?;
        let copies = per + usize::from(block < extra);
        out.extend(std::iter::repeat_n(*row, copies).cloned());
    }
    Ok(out)
}

/// A top-N ranking as a markdown table.
pub fn ranking_table(ranking: &[Ranked], pool: &[VerlRow], top: usize) -> String {
    let by_index: HashMap<i64, &VerlRow> = pool.iter().map(|r| (r.index, r)).collect();
    let mut out = String::from(
        "| rank | index | std | mean acc | epochs | label |\n|---:|---:|---:|---:|---:|---|\n",
    );
    for r in ranking.iter().take(top) {
        let label = by_index
            .get(&r.index)
            .map_or("(not in pool)".to_owned(), |row| {
                row.ground_truth.replace('|', "\\|")
            });
        // Examples without history (random ranking of a pool) have no scores to show.
        let (score, mean) = if r.epochs == 0 {
            ("-".to_owned(), "-".to_owned())
        } else {
            (format!("{:.4}", r.score), format!("{:.3}", r.mean))
        };
        out.push_str(&format!(
            "| {} | {} | {score} | {mean} | {} | {label} |\n",
            r.rank, r.index, r.epochs
        ));
    }
    out
}
