//! Batched autoregressive generation from detached weights with a paged KV cache. Each
//! sequence has its own seed; identical prompts are prefilled once and their keys and values
//! shared; sequences that finish leave the running batch (their blocks are freed) so later
//! steps spend nothing on them, and with a cap on running sequences waiting ones take their
//! places (continuous batching).
//!
//! Where the step path is generic (`oneshot_kernels::device_path`: off the CPU, or forced with
//! `ONESHOT_DEVICE_PATH=generic`) the logits stay on the device and are sampled there
//! ([`crate::device_sampling`]): only token ids and log-probs cross to the host. Both samplers
//! take one uniform per sequence and token from the sequence's own [`SeqRng`], so a seed gives
//! the same tokens on either path.
use crate::batch::Batch;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::params::Weights;
use crate::sampling::{sample, SamplerConfig, SeqRng};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use std::sync::Arc;

/// The next-token logits of one sequence: a host row (sampled by [`sample`]) or a `[vocab]` f32
/// tensor on the model's device (sampled by [`crate::device_sampling::sample_rows`]).
#[derive(Clone)]
enum Logits {
    Host(Arc<Vec<f32>>),
    Device(Tensor),
}

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

/// What a generation call produced, with the cache's footprint.
#[derive(Debug, Clone)]
pub struct GenerateReport {
    /// One per prompt, in request order.
    pub generations: Vec<Generation>,
    /// Largest number of bytes the KV cache held after any step.
    pub peak_cache_bytes: usize,
    /// Distinct prompts prefilled (identical prompts are prefilled once).
    pub prefilled_prompts: usize,
}

/// Sequence `i` continues distinct prompt `ids[i]`; `counts[id]` sequences share it.
struct PromptGroups {
    ids: Vec<usize>,
    counts: Vec<usize>,
}

impl PromptGroups {
    fn new(prompts: &[Vec<u32>]) -> Self {
        let mut first: std::collections::HashMap<&[u32], usize> = Default::default();
        let mut counts = Vec::new();
        let ids = prompts
            .iter()
            .map(|p| {
                let id = *first.entry(p.as_slice()).or_insert_with(|| {
                    counts.push(0);
                    counts.len() - 1
                });
                counts[id] += 1;
                id
            })
            .collect();
        Self { ids, counts }
    }
}

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
    /// batching): whenever sequences finish, waiting ones take their places, so the batch
    /// stays full until the last sequence has started. Each sequence's tokens are the same as
    /// with [`Model::generate`].
    pub fn generate_continuous(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        opts: &GenerateOptions,
        max_running: usize,
        stop_check: Option<StopCheck>,
    ) -> Result<Vec<Generation>> {
        Ok(self
            .generate_report(prompts, seeds, opts, max_running, stop_check)?
            .generations)
    }

    /// [`Model::generate_continuous`], also reporting the cache's footprint.
    ///
    /// The KV cache is paged with shared prompts: each distinct prompt is prefilled once, when
    /// its first sequence starts (the prompts of all sequences starting together in one
    /// left-padded batch), its keys and values kept once until its last sequence ends, and
    /// every sequence of it starts from its first-token logits and appends its own keys and
    /// values in blocks ([`crate::paged_kv`]). In 1-shot RLVR (n samples of one prompt) the
    /// prompt is prefilled once per call.
    pub fn generate_report(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        opts: &GenerateOptions,
        max_running: usize,
        mut stop_check: Option<StopCheck>,
    ) -> Result<GenerateReport> {
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
        let mut report = GenerateReport {
            generations: prompts
                .iter()
                .map(|_| Generation {
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    finish: FinishReason::Length,
                })
                .collect(),
            peak_cache_bytes: 0,
            prefilled_prompts: 0,
        };
        if prompts.is_empty() || opts.max_new_tokens == 0 {
            return Ok(report);
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
        let on_device = oneshot_kernels::device_path::is_generic(self.device());
        let mut rngs: Vec<SeqRng> = seeds.iter().map(|&s| SeqRng::new(s)).collect();
        let groups = PromptGroups::new(prompts);
        // Sequences of each prompt not finished yet; its cache entry goes when none are left.
        let mut unfinished = groups.counts.clone();
        // First-token logits of each cached prompt, shared by the rows that start from them.
        let mut prompt_logits: Vec<Option<Logits>> = vec![None; groups.counts.len()];
        let c = &self.config;
        let (layers, kv_heads) = (c.num_hidden_layers, c.num_key_value_heads);
        let mut cache = if on_device {
            KvCache::paged_on_device(layers, kv_heads, c.head_dim, self.device())
        } else {
            KvCache::paged(layers, kv_heads, c.head_dim)
        };
        let out = &mut report.generations;

        // Per running sequence: its index in the request, next position, logits to sample.
        let mut active: Vec<usize> = Vec::with_capacity(max_running);
        let mut next_pos: Vec<u32> = Vec::with_capacity(max_running);
        let mut logits: Vec<Logits> = Vec::with_capacity(max_running);
        let mut next_seq = 0;
        loop {
            // Fill free slots; new request indices are larger than every running one, so
            // `active` stays ascending.
            let joining: Vec<usize> =
                (next_seq..(next_seq + max_running - active.len()).min(prompts.len())).collect();
            next_seq += joining.len();
            let to_prefill: Vec<usize> = {
                let mut ids: Vec<usize> = joining.iter().map(|&s| groups.ids[s]).collect();
                ids.dedup();
                ids.sort_unstable();
                ids.dedup();
                ids.retain(|&id| prompt_logits[id].is_none());
                ids
            };
            if !to_prefill.is_empty() {
                let firsts: Vec<usize> = to_prefill
                    .iter()
                    .map(|&id| groups.ids.iter().position(|&g| g == id).unwrap())
                    .collect();
                let new_logits = self.prefill_prompts(
                    &w,
                    prompts,
                    &firsts,
                    &to_prefill,
                    opts,
                    &mut cache,
                    on_device,
                )?;
                report.prefilled_prompts += to_prefill.len();
                for (&id, l) in to_prefill.iter().zip(new_logits) {
                    prompt_logits[id] = Some(l);
                }
            }
            for &seq in &joining {
                let id = groups.ids[seq];
                cache.push_row(id)?;
                active.push(seq);
                next_pos.push(prompts[seq].len() as u32);
                logits.push(prompt_logits[id].clone().expect("prefilled above"));
            }
            report.peak_cache_bytes = report.peak_cache_bytes.max(cache.bytes());
            if active.is_empty() {
                break;
            }

            let picks = sample_rows(&logits, &active, &mut rngs, &opts.sampler)?;
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
                cache.retain_rows(&keep)?;
                let mut kept = keep.iter().peekable();
                for (k, &seq) in active.iter().enumerate() {
                    if kept.peek() == Some(&&k) {
                        kept.next();
                        continue;
                    }
                    let id = groups.ids[seq];
                    unfinished[id] -= 1;
                    if unfinished[id] == 0 {
                        cache.remove_prompt(id)?;
                        prompt_logits[id] = None;
                    }
                }
                active = keep.iter().map(|&k| active[k]).collect();
                next_pos = keep.iter().map(|&k| next_pos[k]).collect();
            }
            logits.clear();
            if !active.is_empty() {
                let b = active.len();
                let last: Vec<u32> = active
                    .iter()
                    .map(|&s| *out[s].tokens.last().unwrap())
                    .collect();
                // The paged cache attends without a mask; the context carries the positions.
                let ctx = self.ctx(&next_pos, &vec![1; b], b, 1, 1)?;
                let ids = Tensor::from_vec(last, (b, 1), self.device())?;
                let x = self.run_layers(&w, &ids, &ctx, Some(&mut cache))?;
                logits = self.last_logits(&w, &x, on_device)?;
                for p in next_pos.iter_mut() {
                    *p += 1;
                }
            }
        }
        Ok(report)
    }

    /// Prefill of the distinct prompts `ids` (`prompts[firsts[i]]` is prompt `ids[i]`) as one
    /// left-padded batch: each one's keys and values go into the paged `cache` (padding
    /// dropped); returns their first-token logits (kept on the device when `on_device`).
    #[allow(clippy::too_many_arguments)]
    fn prefill_prompts(
        &self,
        w: &Weights,
        prompts: &[Vec<u32>],
        firsts: &[usize],
        ids: &[usize],
        opts: &GenerateOptions,
        cache: &mut KvCache,
        on_device: bool,
    ) -> Result<Vec<Logits>> {
        let rows: Vec<Vec<u32>> = firsts.iter().map(|&i| prompts[i].clone()).collect();
        let batch = Batch::left_padded(&rows, opts.pad_token_id)?;
        let p = batch.seq_len;
        let mut dense = KvCache::new(self.config.num_hidden_layers, p);
        let ctx = self.batch_ctx(&batch)?;
        let x = self.run_layers(w, &batch.ids_tensor(self.device())?, &ctx, Some(&mut dense))?;
        for (r, (&id, row)) in ids.iter().zip(&rows).enumerate() {
            cache.add_prompt(id, &dense, r, p - row.len())?;
        }
        self.last_logits(w, &x, on_device)
    }

    /// f32 logits of the last position of each row of layer output x `[b, t, hidden]`: rows of
    /// one device tensor when `on_device`, else copied to the host.
    fn last_logits(&self, w: &Weights, x: &Tensor, on_device: bool) -> Result<Vec<Logits>> {
        let (b, t, hid) = x.dims3()?;
        let last = x.narrow(1, t - 1, 1)?.reshape((b, hid))?;
        let h = oneshot_kernels::rms_norm(&last, &w.norm, self.config.rms_norm_eps)?;
        // Sampling reads one row per sequence: bf16 products pay off from BF16_MIN_ROWS rows.
        let matmul = if b >= crate::layers::BF16_MIN_ROWS {
            self.matmul_precision()
        } else {
            crate::layers::MatmulPrecision::F32
        };
        let logits =
            crate::layers::project_with(&h, &w.lm_head, matmul, w.lm_head_packed.as_ref())?
                .to_dtype(DType::F32)?;
        if on_device {
            return Ok((0..b)
                .map(|r| logits.get(r).map(Logits::Device))
                .collect::<candle_core::Result<_>>()?);
        }
        Ok(logits
            .to_vec2::<f32>()?
            .into_iter()
            .map(|row| Logits::Host(Arc::new(row)))
            .collect())
    }
}

/// Sample one token for each running row. `active` is ascending (rows only ever leave it), so
/// the running rows' random streams can be borrowed mutably together; each row draws only from
/// its own stream, so the result is the same as sampling the rows one after another. Device
/// rows are stacked and sampled in one pass on the device with one uniform per row; host rows
/// are sampled in parallel (each over a 150k-entry vocabulary costs milliseconds).
fn sample_rows(
    logits: &[Logits],
    active: &[usize],
    rngs: &mut [SeqRng],
    sampler: &SamplerConfig,
) -> Result<Vec<(u32, f32)>> {
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
    let mut host_rows: Vec<&[f32]> = Vec::with_capacity(logits.len());
    let mut device_rows: Vec<&Tensor> = Vec::new();
    for l in logits {
        match l {
            Logits::Host(row) => host_rows.push(row),
            Logits::Device(t) => device_rows.push(t),
        }
    }
    if !device_rows.is_empty() {
        if !host_rows.is_empty() {
            bail!("generation mixed host and device logits");
        }
        let uniforms: Vec<f64> = running.iter_mut().map(|r| r.uniform()).collect();
        let stacked = Tensor::stack(&device_rows, 0)?;
        let (toks, logps) = crate::device_sampling::sample_rows(&stacked, sampler, &uniforms)?;
        return Ok(toks.into_iter().zip(logps).collect());
    }
    Ok(host_rows
        .par_iter()
        .zip(running.par_iter_mut())
        .map(|(row, rng)| sample(row, sampler, rng))
        .collect())
}
