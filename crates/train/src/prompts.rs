//! Training prompts: verl parquet rows rendered (chat template or plain) and tokenised once at
//! start-up, and the order in which steps draw them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oneshot_data::verl::{read_verl_parquet, VerlRow};
use oneshot_hf::{ChatMessage, ChatTemplate, Tokenizer};

use crate::seeds::{mix, Stream};

/// One training row, ready for the rollout.
#[derive(Debug, Clone)]
pub struct TrainPrompt {
    /// `extra_info.index`: the example's id (HAPO history and accuracy history key).
    pub index: i64,
    /// `reward_model.ground_truth`.
    pub label: String,
    pub prompt_ids: Vec<u32>,
}

/// How prompt messages become text.
pub enum PromptRenderer<'a> {
    /// The model's chat template with the generation prompt (verl's `apply_chat_template`).
    Chat(&'a ChatTemplate),
    /// Message contents joined by newlines (models without a chat template).
    Plain,
}

impl PromptRenderer<'_> {
    pub fn render(&self, row: &VerlRow) -> Result<String> {
        match self {
            PromptRenderer::Chat(t) => {
                let msgs: Vec<ChatMessage> = row
                    .prompt
                    .iter()
                    .map(|m| ChatMessage::new(&m.role, &m.content))
                    .collect();
                t.render(&msgs, true)
            }
            PromptRenderer::Plain => Ok(row
                .prompt
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }
}

/// Reads every file, renders and tokenises each row (without special tokens added, as verl).
/// A prompt longer than `max_len` tokens is an error naming its file and row.
pub fn load_prompts(
    files: &[impl AsRef<Path>],
    renderer: &PromptRenderer,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> Result<Vec<TrainPrompt>> {
    let mut out = Vec::new();
    for file in files {
        let file = file.as_ref();
        let rows = read_verl_parquet(file)
            .with_context(|| format!("reading training file {}", file.display()))?;
        if rows.is_empty() {
            bail!("training file {} has no rows", file.display());
        }
        for (i, row) in rows.iter().enumerate() {
            let text = renderer
                .render(row)
                .with_context(|| format!("{} row {i}: rendering the prompt", file.display()))?;
            let ids = tokenizer
                .encode(&text, false)
                .with_context(|| format!("{} row {i}: tokenising", file.display()))?;
            if ids.is_empty() {
                bail!("{} row {i}: the prompt is empty", file.display());
            }
            if ids.len() > max_len {
                bail!(
                    "{} row {i}: prompt has {} tokens, more than data.max_prompt_length = {max_len}",
                    file.display(),
                    ids.len()
                );
            }
            out.push(TrainPrompt {
                index: row.index,
                label: row.ground_truth.clone(),
                prompt_ids: ids,
            });
        }
    }
    Ok(out)
}

/// Which rows step `step` (0-based) trains on: consecutive slices of an epoch order that is
/// a fresh seeded permutation per epoch (or file order without shuffling); a batch that runs
/// past the end of an epoch continues in the next. Pure in (seed, step): resumable.
pub fn batch_rows(
    n_rows: usize,
    batch: usize,
    step: usize,
    seed: u64,
    shuffle: bool,
) -> Vec<usize> {
    let start = step * batch;
    (start..start + batch)
        .map(|k| {
            let (epoch, pos) = (k / n_rows, k % n_rows);
            if shuffle {
                epoch_order(n_rows, seed, epoch)[pos]
            } else {
                pos
            }
        })
        .collect()
}

/// This rank's slice of a step's batch rows: its position in the batch (the global row index
/// of its first row, which the rollout seeds use) and the rows. Each of `world` ranks takes a
/// contiguous `rows.len() / world` (`data_parallel::check_world` ensures it divides).
pub fn rank_rows(rows: &[usize], rank: usize, world: usize) -> (usize, &[usize]) {
    let per = rows.len() / world.max(1);
    let first = rank * per;
    (first, &rows[first..first + per])
}

/// A Fisher-Yates permutation of `0..n` seeded by (seed, epoch).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Stream::new(mix(&[seed, 0x5348_5546, epoch as u64]));
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_each_epoch_once() {
        let rows: Vec<usize> = (0..3).flat_map(|s| batch_rows(6, 4, s, 9, true)).collect();
        let mut first: Vec<usize> = rows[..6].to_vec();
        let mut second: Vec<usize> = rows[6..12].to_vec();
        first.sort();
        second.sort();
        assert_eq!(first, (0..6).collect::<Vec<_>>());
        assert_eq!(second, (0..6).collect::<Vec<_>>());
        assert_ne!(rows[..6], rows[6..12], "epochs are shuffled differently");
        assert_eq!(batch_rows(5, 3, 1, 0, false), vec![3, 4, 0]);
    }

    #[test]
    fn ranks_take_disjoint_slices_that_cover_the_batch() {
        let rows = batch_rows(10, 6, 2, 3, true);
        let parts: Vec<(usize, &[usize])> = (0..3).map(|r| rank_rows(&rows, r, 3)).collect();
        assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 2, 4]);
        let joined: Vec<usize> = parts.iter().flat_map(|p| p.1.iter().copied()).collect();
        assert_eq!(joined, rows);
        assert_eq!(rank_rows(&rows, 0, 1), (0, &rows[..]));
    }
}
