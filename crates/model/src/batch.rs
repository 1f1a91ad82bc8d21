//! Padded batches on the host: token ids, attention mask, per-row positions and the additive
//! attention mask the layers consume.
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

/// A padded batch of token rows, row-major `[batch, seq_len]`. `attention_mask` is 1 for real
/// tokens, 0 for padding (anywhere: left padding of prompts, right padding of responses).
#[derive(Debug, Clone)]
pub struct Batch {
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u8>,
    pub batch: usize,
    pub seq_len: usize,
}

impl Batch {
    pub fn new(
        input_ids: Vec<u32>,
        attention_mask: Vec<u8>,
        batch: usize,
        seq_len: usize,
    ) -> Result<Self> {
        if input_ids.len() != batch * seq_len || attention_mask.len() != batch * seq_len {
            bail!(
                "batch of {batch} x {seq_len} needs {} ids and mask entries, got {} and {}",
                batch * seq_len,
                input_ids.len(),
                attention_mask.len()
            );
        }
        if batch == 0 || seq_len == 0 {
            bail!("empty batch ({batch} x {seq_len})");
        }
        Ok(Self {
            input_ids,
            attention_mask,
            batch,
            seq_len,
        })
    }

    /// Left-pad rows to the longest one (prompts for generation).
    pub fn left_padded(rows: &[Vec<u32>], pad_id: u32) -> Result<Self> {
        let t = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut mask = Vec::with_capacity(rows.len() * t);
        for r in rows {
            ids.extend(std::iter::repeat_n(pad_id, t - r.len()).chain(r.iter().copied()));
            mask.extend(
                std::iter::repeat_n(0u8, t - r.len()).chain(std::iter::repeat_n(1, r.len())),
            );
        }
        Self::new(ids, mask, rows.len(), t)
    }

    /// The trainer's layout: prompts left-padded to P, responses right-padded to R, one row
    /// per (prompt, response) pair. Returns the batch and P, where response tokens start.
    pub fn prompt_response(
        prompts: &[Vec<u32>],
        responses: &[Vec<u32>],
        pad_id: u32,
    ) -> Result<(Self, usize)> {
        if prompts.len() != responses.len() {
            bail!(
                "{} prompts but {} responses",
                prompts.len(),
                responses.len()
            );
        }
        let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let r = responses.iter().map(Vec::len).max().unwrap_or(0);
        if p == 0 || r == 0 {
            bail!("prompt_response needs non-empty prompts and at least one non-empty response");
        }
        let mut ids = Vec::with_capacity(prompts.len() * (p + r));
        let mut mask = Vec::with_capacity(prompts.len() * (p + r));
        for (pr, re) in prompts.iter().zip(responses) {
            if pr.is_empty() {
                bail!("empty prompt in prompt_response batch");
            }
            ids.extend(std::iter::repeat_n(pad_id, p - pr.len()).chain(pr.iter().copied()));
            mask.extend(
                std::iter::repeat_n(0u8, p - pr.len()).chain(std::iter::repeat_n(1, pr.len())),
            );
            ids.extend(
                re.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, r - re.len())),
            );
            mask.extend(
                std::iter::repeat_n(1u8, re.len()).chain(std::iter::repeat_n(0, r - re.len())),
            );
        }
        Ok((Self::new(ids, mask, prompts.len(), p + r)?, p))
    }

    /// Positions = cumsum(mask) - 1, clamped at 0 for leading padding.
    pub fn positions(&self) -> Vec<u32> {
        let mut pos = Vec::with_capacity(self.input_ids.len());
        for row in self.attention_mask.chunks(self.seq_len) {
            let mut c = 0u32;
            for &m in row {
                c += m as u32;
                pos.push(c.saturating_sub(1));
            }
        }
        pos
    }

    /// Response mask `[batch, seq_len - start]` (1 where a real response token is).
    pub fn response_mask(&self, start: usize) -> Vec<u8> {
        self.attention_mask
            .chunks(self.seq_len)
            .flat_map(|row| row[start..].iter().copied())
            .collect()
    }

    pub fn ids_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.input_ids,
            (self.batch, self.seq_len),
            device,
        )?)
    }
}

/// Additive attention mask `[b, 1, 1, t_q, t_k]`: 0 where query i (at key index
/// `t_k - t_q + i`) may attend key j (causal and key not padding), -1e9 elsewhere. A large
/// finite negative rather than -inf, so that fully padded query rows stay finite.
pub fn additive_mask(
    key_mask: &[u8],
    b: usize,
    t_q: usize,
    t_k: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    debug_assert_eq!(key_mask.len(), b * t_k);
    let offset = t_k - t_q;
    let mut m = Vec::with_capacity(b * t_q * t_k);
    for row in key_mask.chunks(t_k) {
        for i in 0..t_q {
            for (j, &k) in row.iter().enumerate() {
                m.push(if j <= offset + i && k != 0 {
                    0.0f32
                } else {
                    -1e9
                });
            }
        }
    }
    Ok(Tensor::from_vec(m, (b, 1, 1, t_q, t_k), device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_response_layout_and_positions() {
        let (b, p) =
            Batch::prompt_response(&[vec![5, 6, 7], vec![8]], &[vec![1], vec![2, 3]], 0).unwrap();
        assert_eq!(p, 3);
        assert_eq!(b.input_ids, vec![5, 6, 7, 1, 0, 0, 0, 8, 2, 3]);
        assert_eq!(b.attention_mask, vec![1, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
        assert_eq!(b.positions(), vec![0, 1, 2, 3, 3, 0, 0, 0, 1, 2]);
        assert_eq!(b.response_mask(p), vec![1, 0, 1, 1]);
    }

    #[test]
    fn mask_is_causal_and_hides_padding() {
        let m = additive_mask(&[0, 1, 1], 1, 3, 3, DType::F32, &Device::Cpu).unwrap();
        let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let allowed: Vec<bool> = v.iter().map(|&x| x == 0.0).collect();
        assert_eq!(
            allowed,
            vec![false, false, false, false, true, false, false, true, true]
        );
        let m = additive_mask(&[1, 1, 1], 1, 1, 3, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            m.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0.0; 3]
        );
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(Batch::new(vec![1, 2], vec![1], 1, 2).is_err());
        assert!(Batch::prompt_response(&[vec![1]], &[], 0).is_err());
    }
}
