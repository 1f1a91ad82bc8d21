//! The rollout batch as the update sees it: one entry per response, with its prompt, its
//! tokens and per-token quantities; and the helpers that cut it into padded (micro-)batches.

use anyhow::Result;
use oneshot_model::{Batch, LogprobOptions, Model};
use oneshot_rl::TokenGrid;

use crate::critic::Critic;

/// Per-response data of one step. Per-token vectors have the response's own length.
#[derive(Debug, Clone, Default)]
pub struct Experience {
    pub prompts: Vec<Vec<u32>>,
    pub responses: Vec<Vec<u32>>,
    pub advantages: Vec<Vec<f32>>,
    /// Log-probs of the rollout policy; `None` when the update is exactly on-policy (one
    /// mini-batch, one epoch), where the ratio is 1 by definition and they are taken from the
    /// current forward pass instead of a separate one.
    pub old_logp: Option<Vec<Vec<f32>>>,
    pub ref_logp: Option<Vec<Vec<f32>>>,
    pub values: Option<Vec<Vec<f32>>>,
    pub returns: Option<Vec<Vec<f32>>>,
}

impl Experience {
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    /// Longest response among `rows`.
    pub fn max_response(&self, rows: &[usize]) -> usize {
        rows.iter()
            .map(|&i| self.responses[i].len())
            .max()
            .unwrap_or(0)
    }

    /// The padded model batch of `rows` and where responses start.
    pub fn model_batch(&self, rows: &[usize], pad_id: u32) -> Result<(Batch, usize)> {
        let prompts: Vec<Vec<u32>> = rows.iter().map(|&i| self.prompts[i].clone()).collect();
        let responses: Vec<Vec<u32>> = rows.iter().map(|&i| self.responses[i].clone()).collect();
        Batch::prompt_response(&prompts, &responses, pad_id)
    }

    /// 1 on the response tokens of `rows`, 0 on padding, `cols` wide.
    pub fn mask(&self, rows: &[usize], cols: usize) -> TokenGrid {
        let mut g = TokenGrid::zeros(rows.len(), cols);
        for (k, &i) in rows.iter().enumerate() {
            g.row_mut(k)[..self.responses[i].len().min(cols)].fill(1.0);
        }
        g
    }

    /// Micro-batches of `rows` (in order) whose padded size `rows x (prompt + response)`
    /// stays within `token_budget` (a single longer row gets a micro-batch of its own).
    pub fn plan_micro_batches(&self, rows: &[usize], token_budget: usize) -> Vec<Vec<usize>> {
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        let (mut max_p, mut max_r) = (0usize, 0usize);
        for &i in rows {
            let (p, r) = (
                max_p.max(self.prompts[i].len()),
                max_r.max(self.responses[i].len()),
            );
            if !cur.is_empty() && (cur.len() + 1) * (p + r) > token_budget {
                out.push(std::mem::take(&mut cur));
                max_p = self.prompts[i].len();
                max_r = self.responses[i].len();
            } else {
                (max_p, max_r) = (p, r);
            }
            cur.push(i);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}

/// Per-row values of `rows` as a zero-padded `[rows, cols]` grid.
pub fn grid(per_row: &[Vec<f32>], rows: &[usize], cols: usize) -> TokenGrid {
    let mut g = TokenGrid::zeros(rows.len(), cols);
    for (k, &i) in rows.iter().enumerate() {
        let v = &per_row[i];
        let n = v.len().min(cols);
        g.row_mut(k)[..n].copy_from_slice(&v[..n]);
    }
    g
}

/// The rows of a grid cut to each response's length.
pub fn ragged(g: &TokenGrid, lens: &[usize]) -> Vec<Vec<f32>> {
    lens.iter()
        .enumerate()
        .map(|(k, &n)| g.row(k)[..n.min(g.cols)].to_vec())
        .collect()
}

/// Detached per-token log-probs of every response under `model`, micro-batch by micro-batch.
pub fn logprobs_detached(
    model: &Model,
    exp: &Experience,
    plan: &[Vec<usize>],
    temperature: f64,
    opts: &LogprobOptions,
    pad_id: u32,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); exp.len()];
    for rows in plan {
        let (batch, p) = exp.model_batch(rows, pad_id)?;
        let (lp, _) = model.token_logprobs(&batch, p, temperature, opts)?;
        let lp = lp.to_vec2::<f32>()?;
        for (k, &i) in rows.iter().enumerate() {
            out[i] = lp[k][..exp.responses[i].len()].to_vec();
        }
    }
    Ok(out)
}

/// Detached critic values of every response token.
pub fn values_detached(
    critic: &Critic,
    exp: &Experience,
    plan: &[Vec<usize>],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); exp.len()];
    for rows in plan {
        let (batch, p) = exp.model_batch(rows, pad_id)?;
        let v = critic.values(&batch, p, true)?.to_vec2::<f32>()?;
        for (k, &i) in rows.iter().enumerate() {
            out[i] = v[k][..exp.responses[i].len()].to_vec();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_respect_the_token_budget() {
        let exp = Experience {
            prompts: vec![vec![1; 3], vec![1; 3], vec![1; 3], vec![1; 9]],
            responses: vec![vec![2; 2], vec![2; 3], vec![2; 1], vec![2; 1]],
            ..Default::default()
        };
        // rows 0,1: 2 x (3 + 3) = 12 <= 12; adding row 2 makes 18; row 3 alone is 10.
        assert_eq!(
            exp.plan_micro_batches(&[0, 1, 2, 3], 12),
            vec![vec![0, 1], vec![2], vec![3]]
        );
        assert_eq!(
            exp.plan_micro_batches(&[0, 1, 2, 3], 1000),
            vec![vec![0, 1, 2, 3]]
        );
        let m = exp.mask(&[1, 2], 3);
        assert_eq!(m.data, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        let g = grid(&[vec![1.0, 2.0], vec![3.0]], &[1, 0], 2);
        assert_eq!(g.data, vec![3.0, 0.0, 1.0, 2.0]);
        assert_eq!(ragged(&g, &[1, 2]), vec![vec![3.0], vec![1.0, 2.0]]);
    }
}
