//! Batched autoregressive generation from detached weights with a KV cache. Each sequence has
//! its own seed; sequences that finish leave the running batch (their cache rows are dropped)
//! so later steps spend nothing on them, and with a cap on running sequences waiting prompts
//! take their places (continuous batching).
use crate::batch::Batch;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::params::Weights;
use crate::sampling::{sample, SamplerConfig, SeqRng};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub sampler: SamplerConfig,
    pub max_new_tokens: usize,
    /// Generation ends after any of these tokens (which is kept in the output).
    pub eos_token_ids: Vec<u32>,
    /// Generation ends when the output ends with one of these token sequences (kept).
    pub stop_sequences: Vec<Vec<u32>>,
    /// Token used for left padding of prompts (masked out, value irrelevant).
    pub pad_token_id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Eos,
    Stop,
    Length,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub tokens: Vec<u32>,
    /// Log-prob of each generated token under `softmax(logits / temperature)`.
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
}

/// Decides, given a sequence's index in the request and its tokens so far, whether it should
/// stop (e.g. decode and look for a stop string).
pub type StopCheck<'a> = &'a mut dyn FnMut(usize, &[u32]) -> bool;

impl Model {
    /// Generate continuations of `prompts`, one per prompt, sequence i drawing from
    /// `seeds[i]` only: its tokens do not depend on the rest of the batch.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        opts: &GenerateOptions,
        stop_check: Option<StopCheck>,
    ) -> Result<Vec<Generation>> {
        self.generate_continuous(prompts, seeds, opts, prompts.len(), stop_check)
    }

    /// [`Model::generate`] with at most `max_running` sequences decoding at once (continuous
    /// batching): whenever sequences finish, waiting prompts are prefilled and join the
    /// running batch, so it stays full until the last prompt has started. Joining rows are
    /// right-aligned on the cache's time axis (masked positions in front), and positions no
    /// running row can see any more are dropped from the cache. Each sequence's tokens are
    /// the same as with [`Model::generate`].
    pub fn generate_continuous(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        opts: &GenerateOptions,
        max_running: usize,
        mut stop_check: Option<StopCheck>,
    ) -> Result<Vec<Generation>> {
        if prompts.len() != seeds.len() {
            bail!("{} prompts but {} seeds", prompts.len(), seeds.len());
        }
        if let Some(i) = prompts.iter().position(Vec::is_empty) {
            bail!("prompt {i} is empty");
        }
        let vocab = self.config.vocab_size as u32;
        if let Some(t) = prompts.iter().flatten().find(|&&t| t >= vocab) {
            bail!("prompt token id {t} is outside the vocabulary (size {vocab})");
        }
        let mut out: Vec<Generation> = prompts
            .iter()
            .map(|_| Generation {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                finish: FinishReason::Length,
            })
            .collect();
        if prompts.is_empty() || opts.max_new_tokens == 0 {
            return Ok(out);
        }
        let w = self.decode_weights()?;
        // bf16 products: round the projections once for the whole generation.
        let w = if self.matmul_precision() == crate::layers::MatmulPrecision::Bf16
            && w.lm_head.dtype() == DType::F32
        {
            w.with_bf16_projections()?
        } else {
            w
        };
        let max_running = max_running.clamp(1, prompts.len());
        let mut rngs: Vec<SeqRng> = seeds.iter().map(|&s| SeqRng::new(s)).collect();

        // Per running sequence: its index in the request, key padding mask, next position.
        let first: Vec<usize> = (0..max_running).collect();
        let mut next_prompt = max_running;
        let (mut cache, mut key_mask, mut next_pos, mut logits) =
            self.prefill(&w, prompts, &first, opts)?;
        let mut active = first;

        loop {
            let picks = sample_rows(&logits, &active, &mut rngs, &opts.sampler);
            let mut keep = Vec::with_capacity(active.len());
            for (k, &seq) in active.iter().enumerate() {
                let (tok, lp) = picks[k];
                let g = &mut out[seq];
                g.tokens.push(tok);
                g.logprobs.push(lp);
                let finish = if opts.eos_token_ids.contains(&tok) {
                    Some(FinishReason::Eos)
                } else if opts
                    .stop_sequences
                    .iter()
                    .any(|s| !s.is_empty() && g.tokens.ends_with(s))
                    || stop_check.as_mut().is_some_and(|f| f(seq, &g.tokens))
                {
                    Some(FinishReason::Stop)
                } else if g.tokens.len() == opts.max_new_tokens {
                    Some(FinishReason::Length)
                } else {
                    None
                };
                match finish {
                    Some(f) => g.finish = f,
                    None => keep.push(k),
                }
            }
            if keep.len() < active.len() {
                let idx: Vec<u32> = keep.iter().map(|&k| k as u32).collect();
                cache.retain_rows(&Tensor::from_vec(idx, keep.len(), self.device())?)?;
                active = keep.iter().map(|&k| active[k]).collect();
                key_mask = keep
                    .iter()
                    .map(|&k| std::mem::take(&mut key_mask[k]))
                    .collect();
                next_pos = keep.iter().map(|&k| next_pos[k]).collect();
            }
            logits.clear();
            if !active.is_empty() {
                let b = active.len();
                let last: Vec<u32> = active
                    .iter()
                    .map(|&s| *out[s].tokens.last().unwrap())
                    .collect();
                for m in key_mask.iter_mut() {
                    m.push(1);
                }
                let t_k = cache.len() + 1;
                let flat_mask: Vec<u8> = key_mask.iter().flatten().copied().collect();
                let ctx = self.ctx(&next_pos, &flat_mask, b, 1, t_k)?;
                let ids = Tensor::from_vec(last, (b, 1), self.device())?;
                let x = self.run_layers(&w, &ids, &ctx, Some(&mut cache))?;
                logits = self.last_logits(&w, &x)?;
                for p in next_pos.iter_mut() {
                    *p += 1;
                }
            }
            // Refill freed slots with waiting prompts (their first-token logits come from the
            // prefill); new request indices are larger than every running one, so `active`
            // stays ascending.
            let free = max_running - active.len();
            if free > 0 && next_prompt < prompts.len() {
                let joining: Vec<usize> =
                    (next_prompt..(next_prompt + free).min(prompts.len())).collect();
                next_prompt += joining.len();
                let (mut new_cache, mut new_mask, new_pos, new_logits) =
                    self.prefill(&w, prompts, &joining, opts)?;
                if active.is_empty() {
                    (cache, key_mask) = (new_cache, new_mask);
                } else {
                    let (t_run, t_new) = (cache.len(), new_cache.len());
                    if t_new > t_run {
                        cache.pad_front(t_new - t_run)?;
                        key_mask
                            .iter_mut()
                            .for_each(|m| pad_mask_front(m, t_new - t_run));
                    } else {
                        new_cache.pad_front(t_run - t_new)?;
                        new_mask
                            .iter_mut()
                            .for_each(|m| pad_mask_front(m, t_run - t_new));
                    }
                    cache.append_rows(&new_cache)?;
                    key_mask.extend(new_mask);
                }
                active.extend(joining);
                next_pos.extend(new_pos);
                logits.extend(new_logits);
                // Positions that no running row attends to: drop them once they are a quarter
                // of the cache, so refills do not grow the time axis without bound.
                let unseen = key_mask
                    .iter()
                    .map(|m| m.iter().position(|&v| v == 1).unwrap_or(m.len()))
                    .min()
                    .unwrap_or(0);
                if unseen >= 32 && 4 * unseen >= cache.len() {
                    cache.drop_front(unseen)?;
                    key_mask.iter_mut().for_each(|m| {
                        m.drain(..unseen);
                    });
                }
            }
            if active.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// Prefill of `prompts[idx]` as one left-padded batch: its cache, per-row key masks, next
    /// positions and first-token logits.
    #[allow(clippy::type_complexity)]
    fn prefill(
        &self,
        w: &Weights,
        prompts: &[Vec<u32>],
        idx: &[usize],
        opts: &GenerateOptions,
    ) -> Result<(KvCache, Vec<Vec<u8>>, Vec<u32>, Vec<Vec<f32>>)> {
        let rows: Vec<Vec<u32>> = idx.iter().map(|&i| prompts[i].clone()).collect();
        let batch = Batch::left_padded(&rows, opts.pad_token_id)?;
        let p = batch.seq_len;
        let mut cache = KvCache::new(
            self.config.num_hidden_layers,
            p + opts.max_new_tokens.min(256),
        );
        let key_mask: Vec<Vec<u8>> = batch.attention_mask.chunks(p).map(<[u8]>::to_vec).collect();
        let next_pos: Vec<u32> = rows.iter().map(|r| r.len() as u32).collect();
        let ctx = self.batch_ctx(&batch)?;
        let x = self.run_layers(w, &batch.ids_tensor(self.device())?, &ctx, Some(&mut cache))?;
        let logits = self.last_logits(w, &x)?;
        Ok((cache, key_mask, next_pos, logits))
    }

    /// f32 logits of the last position of each row of layer output x `[b, t, hidden]`.
    fn last_logits(&self, w: &Weights, x: &Tensor) -> Result<Vec<Vec<f32>>> {
        let (b, t, hid) = x.dims3()?;
        let last = x.narrow(1, t - 1, 1)?.reshape((b, hid))?;
        let h = oneshot_kernels::rms_norm(&last, &w.norm, self.config.rms_norm_eps)?;
        // Sampling reads one row per sequence: bf16 products pay off from BF16_MIN_ROWS rows.
        let matmul = if b >= crate::layers::BF16_MIN_ROWS {
            self.matmul_precision()
        } else {
            crate::layers::MatmulPrecision::F32
        };
        let logits = crate::layers::project(&h, &w.lm_head, matmul)?.to_dtype(DType::F32)?;
        Ok(logits.to_vec2::<f32>()?)
    }
}

/// `n` masked positions in front of a key mask row.
fn pad_mask_front(m: &mut Vec<u8>, n: usize) {
    m.splice(0..0, std::iter::repeat_n(0u8, n));
}

/// Sample one token for each running row, rows in parallel (each over a 150k-entry
/// vocabulary costs milliseconds). `active` is ascending (rows only ever leave it), so the
/// running rows' random streams can be borrowed mutably together; each row draws only from
/// its own stream, so the result is the same as sampling the rows one after another.
fn sample_rows(
    logits: &[Vec<f32>],
    active: &[usize],
    rngs: &mut [SeqRng],
    sampler: &SamplerConfig,
) -> Vec<(u32, f32)> {
    use rayon::prelude::*;
    debug_assert!(active.windows(2).all(|w| w[0] < w[1]));
    let mut running: Vec<&mut SeqRng> = Vec::with_capacity(active.len());
    let mut next = active.iter().peekable();
    for (i, rng) in rngs.iter_mut().enumerate() {
        if next.peek() == Some(&&i) {
            running.push(rng);
            next.next();
        }
    }
    logits
        .par_iter()
        .zip(running.par_iter_mut())
        .map(|(row, rng)| sample(row, sampler, rng))
        .collect()
}
