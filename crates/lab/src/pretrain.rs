//! `oneshot lab pretrain`: a small Qwen2-architecture base model trained from scratch on the
//! lab corpus with next-token loss on the solution tokens only (the prompt is context), AdamW
//! (oneshot-rl) and a warmup-cosine schedule; saved as an HF checkpoint with its tokenizer.
//!
//! Everything is a function of the seeds: the tokenizer's training text, the initial weights
//! and the documents of every step.
use crate::corpus::{Corpus, CorpusConfig};
use crate::rng::{item_rng, Purpose};
use crate::splits::held_out_questions;
use crate::tokenizer::{self, ENDOFTEXT, IM_END};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use oneshot_hf::Tokenizer;
use oneshot_model::{Batch, LogprobOptions, Model, ModelConfig};
use oneshot_optim::{AdamW, AdamWConfig, LrSchedule};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The architecture knobs of the lab model (the rest is Qwen2's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
}

impl ModelShape {
    /// The committed base model: ~1.5M parameters (tied embeddings), sized so that 700 steps
    /// of 32 documents fit in about 30 minutes on 2 (shared) CPU cores. A 2.5M model
    /// (hidden 192, 6 layers) ran at half the tokens/s here, too slow to see enough data.
    pub fn base() -> Self {
        Self {
            hidden_size: 160,
            intermediate_size: 448,
            num_hidden_layers: 5,
            num_attention_heads: 5,
            num_key_value_heads: 1,
        }
    }

    /// For tests: a few thousand parameters.
    pub fn tiny() -> Self {
        Self {
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Seed of the corpus, the initial weights and the batch order.
    pub seed: u64,
    /// Seed of the pool/benchmark whose questions the corpus must not contain.
    pub data_seed: u64,
    pub steps: usize,
    /// Documents per optimiser step.
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// The cosine ends at `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub vocab_size: usize,
    /// Corpus documents the tokenizer is trained on.
    pub tokenizer_docs: usize,
    /// Longer (prompt + solution) sequences are cut (solutions are far shorter in practice).
    pub max_seq_len: usize,
    pub shape: ModelShape,
    pub corpus: CorpusConfig,
    /// Print a log line every this many steps (0 = never).
    pub log_every: usize,
    /// Save the checkpoint every this many steps as well as at the end (0 = at the end only).
    pub save_every: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            data_seed: 0,
            // 3,600 x 32 documents: with 55% of solutions direct, the worked ones need the
            // longer run for arithmetic that is right when written out.
            steps: 3600,
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 50,
            min_lr_ratio: 0.05,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            vocab_size: 768,
            tokenizer_docs: 20_000,
            max_seq_len: 256,
            shape: ModelShape::base(),
            corpus: CorpusConfig::default(),
            log_every: 25,
            save_every: 50,
        }
    }
}

impl PretrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.batch_size == 0 {
            bail!(
                "pretrain: steps ({}) and batch_size ({}) must be > 0",
                self.steps,
                self.batch_size
            );
        }
        if self.warmup_steps > self.steps {
            bail!(
                "pretrain: warmup_steps {} must be <= steps {}",
                self.warmup_steps,
                self.steps
            );
        }
        if self.tokenizer_docs == 0 {
            bail!("pretrain: tokenizer_docs must be > 0");
        }
        if self.max_seq_len < 16 {
            bail!(
                "pretrain: max_seq_len {} is too short (>= 16)",
                self.max_seq_len
            );
        }
        let s = &self.shape;
        if s.num_attention_heads == 0 || !s.hidden_size.is_multiple_of(s.num_attention_heads) {
            bail!(
                "pretrain: hidden_size {} must be a multiple of num_attention_heads {}",
                s.hidden_size,
                s.num_attention_heads
            );
        }
        self.schedule().validate()?;
        self.corpus.validate()
    }

    pub fn schedule(&self) -> LrSchedule {
        LrSchedule::WarmupCosine {
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
            min_lr_ratio: self.min_lr_ratio,
        }
    }
}

/// `config.json` of a Qwen2 model of `shape` over a `vocab_size` tokenizer.
pub fn qwen2_config(
    shape: &ModelShape,
    vocab_size: usize,
    max_positions: usize,
) -> serde_json::Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "max_position_embeddings": max_positions,
        "max_window_layers": shape.num_hidden_layers,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": true,
        "use_sliding_window": false,
        "sliding_window": null,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
        "bos_token_id": null,
        "eos_token_id": 2,
        "torch_dtype": "float32",
        "transformers_version": "4.46.0",
    })
}

/// A logged point of the loss curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: usize,
    /// Mean next-token loss (nats/token) on the solution tokens of this step's batch.
    pub loss: f64,
    pub lr: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainReport {
    pub parameters: usize,
    pub vocab_size: usize,
    pub curve: Vec<LossPoint>,
    /// Tokens run through the model (prompt and solution).
    pub tokens: usize,
    /// Solution tokens the loss was taken on.
    pub loss_tokens: usize,
    pub seconds: f64,
}

impl PretrainReport {
    /// Mean loss of the first / last `k` steps.
    pub fn head_tail(&self, k: usize) -> (f64, f64) {
        let n = self.curve.len();
        let k = k.clamp(1, n.max(1));
        let mean = |s: &[LossPoint]| s.iter().map(|p| p.loss).sum::<f64>() / s.len().max(1) as f64;
        (
            mean(&self.curve[..k.min(n)]),
            mean(&self.curve[n.saturating_sub(k)..]),
        )
    }
}

/// One training example as token ids.
struct Encoded {
    prompt: Vec<u32>,
    solution: Vec<u32>,
}

/// The documents of step `step` (corpus indices `step * batch .. (step + 1) * batch`,
/// offset past the tokenizer's documents), tokenized.
fn encode_step(
    corpus: &Corpus,
    tok: &Tokenizer,
    template: &oneshot_hf::ChatTemplate,
    cfg: &PretrainConfig,
    step: usize,
    im_end: u32,
) -> Result<Vec<Encoded>> {
    let base = (cfg.tokenizer_docs + step * cfg.batch_size) as u64;
    let docs: Vec<_> = (0..cfg.batch_size as u64)
        .map(|k| corpus.document(base + k))
        .collect();
    let prompts: Vec<String> = docs
        .iter()
        .map(|d| tokenizer::render_prompt(template, &d.user))
        .collect::<Result<_>>()?;
    let solutions: Vec<String> = docs.iter().map(|d| d.solution.clone()).collect();
    let p_ids = tok.encode_batch(&prompts, false)?;
    let s_ids = tok.encode_batch(&solutions, false)?;
    Ok(p_ids
        .into_iter()
        .zip(s_ids)
        .map(|(prompt, mut solution)| {
            solution.push(im_end);
            let room = cfg.max_seq_len.saturating_sub(prompt.len()).max(1);
            solution.truncate(room);
            Encoded { prompt, solution }
        })
        .collect())
}

/// The side directory the tokenizer files are staged in before a save copies them.
fn side_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lab".into());
    out.with_file_name(format!(".{name}.tokenizer-files"))
}

/// Whether progress is shown: a bar on a terminal, otherwise a line every
/// `ONESHOT_PROGRESS_SECS` seconds (see `oneshot_run::progress`). The `log_every` lines are
/// printed either way.
pub struct Progress {
    pub bar: bool,
}

/// Train the tokenizer and the model; with `out`, save the checkpoint there (and every
/// `save_every` steps). Returns the trained model, its tokenizer and the loss curve.
pub fn pretrain(
    cfg: &PretrainConfig,
    out: Option<&Path>,
    progress: &Progress,
) -> Result<(Model, Tokenizer, PretrainReport)> {
    cfg.validate()?;
    if let Some(out) = out {
        check_output_dir(out)?;
    }
    let started = Instant::now();
    let exclude = held_out_questions(cfg.data_seed).context("generating the held-out questions")?;
    let corpus = Corpus::new(cfg.corpus.clone(), cfg.seed, exclude)?;
    let template = tokenizer::chat_template()?;

    // Tokenizer on the first `tokenizer_docs` documents, as the model will see them.
    let texts: Vec<String> = (0..cfg.tokenizer_docs as u64)
        .map(|i| {
            let d = corpus.document(i);
            Ok(format!(
                "{}{}{IM_END}",
                tokenizer::render_prompt(&template, &d.user)?,
                d.solution
            ))
        })
        .collect::<Result<_>>()?;
    let tok = tokenizer::train_tokenizer(texts.iter(), cfg.vocab_size)?;
    let vocab = tok.vocab_size();
    let im_end = tok
        .token_to_id(IM_END)
        .context("tokenizer lacks <|im_end|>")?;
    let pad = tok
        .token_to_id(ENDOFTEXT)
        .context("tokenizer lacks <|endoftext|>")?;

    let side = out.map(side_dir);
    if let Some(side) = &side {
        tokenizer::write_tokenizer_files(side, &tok, cfg.max_seq_len)?;
    }

    let config = ModelConfig::from_json(qwen2_config(&cfg.shape, vocab, cfg.max_seq_len.max(512)))?;
    let init_seed: u64 = item_rng(cfg.seed, Purpose::Pretrain, 0).gen();
    let model = Model::random(config, DType::F32, &Device::Cpu, init_seed)?;
    let parameters = model.config.num_parameters();
    let mut opt = AdamW::new(
        model.vars(),
        AdamWConfig {
            lr: cfg.lr,
            betas: (0.9, 0.95),
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
            max_grad_norm: Some(cfg.max_grad_norm),
        },
    )?;
    let schedule = cfg.schedule();
    let opts = LogprobOptions::default();

    let style = if progress.bar {
        oneshot_run::Style::Auto
    } else {
        oneshot_run::Style::Quiet
    };
    let bar =
        oneshot_run::Progress::with_style("lab pretrain", cfg.steps as u64, style).unit("steps");
    let mut report = PretrainReport {
        parameters,
        vocab_size: vocab,
        curve: Vec::new(),
        tokens: 0,
        loss_tokens: 0,
        seconds: 0.0,
    };
    let mut window_tokens = 0usize;
    let mut window_start = Instant::now();
    for step in 0..cfg.steps {
        let enc = encode_step(&corpus, &tok, &template, cfg, step, im_end)?;
        // Each document is one right-padded row: its first token stands in the "prompt" slot
        // and everything after it is scored, with the prompt positions weighted 0. (Left-
        // padding prompts and right-padding solutions separately would pad twice.)
        let heads: Vec<Vec<u32>> = enc.iter().map(|e| e.prompt[..1].to_vec()).collect();
        let tails: Vec<Vec<u32>> = enc
            .iter()
            .map(|e| e.prompt[1..].iter().chain(&e.solution).copied().collect())
            .collect();
        let (batch, start) = Batch::prompt_response(&heads, &tails, pad)?;
        let width = batch.seq_len - start;
        let mut weight = vec![0f32; enc.len() * width];
        for (row, e) in enc.iter().enumerate() {
            let first = e.prompt.len() - 1;
            weight[row * width + first..row * width + first + e.solution.len()].fill(1.0);
        }
        let weight = Tensor::from_vec(weight, (enc.len(), width), model.device())?;
        let n_loss: usize = enc.iter().map(|e| e.solution.len()).sum();
        let n_tok: usize = enc.iter().map(|e| e.prompt.len() + e.solution.len()).sum();
        let (loss, grads) =
            model.logprobs_with_grad(&batch, start, 1.0, &opts, |lp, _entropy| {
                Ok(((lp * &weight)?.sum_all()? * (-1.0 / n_loss as f64))?)
            })?;
        if !loss.is_finite() {
            bail!("pretrain: the loss became {loss} at step {step}; lower --lr");
        }
        let lr = schedule.lr_at(step);
        opt.step(&grads, lr)?;
        report.curve.push(LossPoint {
            step,
            loss: loss as f64,
            lr,
        });
        report.tokens += n_tok;
        report.loss_tokens += n_loss;
        window_tokens += n_tok;
        bar.message(format!("loss {loss:.3} lr {lr:.2e}"));
        bar.inc(1);
        if cfg.log_every > 0 && ((step + 1) % cfg.log_every == 0 || step + 1 == cfg.steps) {
            let k = cfg.log_every.min(report.curve.len());
            let mean = report.curve[report.curve.len() - k..]
                .iter()
                .map(|p| p.loss)
                .sum::<f64>()
                / k as f64;
            let rate = window_tokens as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
            bar.suspend(|| {
                eprintln!(
                    "step {:>6}/{} loss {mean:.4} lr {lr:.2e} {rate:.0} tok/s elapsed {:.0}s",
                    step + 1,
                    cfg.steps,
                    started.elapsed().as_secs_f64()
                )
            });
            window_tokens = 0;
            window_start = Instant::now();
        }
        let last = step + 1 == cfg.steps;
        if let (Some(out), Some(side)) = (out, &side) {
            if last || (cfg.save_every > 0 && (step + 1) % cfg.save_every == 0) {
                report.seconds = started.elapsed().as_secs_f64();
                save(&model, out, side, cfg, &report, step + 1)?;
            }
        }
    }
    bar.finish();
    report.seconds = started.elapsed().as_secs_f64();
    if let (Some(out), Some(side)) = (out, &side) {
        write_report(out, cfg, &report, cfg.steps)?;
        std::fs::remove_dir_all(side).with_context(|| format!("removing {}", side.display()))?;
    }
    Ok((model, tok, report))
}

/// Fail before training, not at the first save, when `out` holds something other than a
/// checkpoint (a save replaces the whole directory).
fn check_output_dir(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .next()
        .is_none();
    if !empty && !out.join(oneshot_hf::files::CONFIG).is_file() {
        bail!(
            "output directory {} is not empty and is not a checkpoint; choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// The file in the checkpoint that records how it was trained.
pub const REPORT_FILE: &str = "lab_pretrain.json";

fn save(
    model: &Model,
    out: &Path,
    side: &Path,
    cfg: &PretrainConfig,
    report: &PretrainReport,
    steps_done: usize,
) -> Result<()> {
    model.save(out, Some(DType::F32), Some(side))?;
    write_report(out, cfg, report, steps_done)
}

fn write_report(
    out: &Path,
    cfg: &PretrainConfig,
    report: &PretrainReport,
    steps_done: usize,
) -> Result<()> {
    // The curve is thinned to at most ~200 points to keep the committed file small.
    let every = (report.curve.len() / 200).max(1);
    let curve: Vec<&LossPoint> = report
        .curve
        .iter()
        .filter(|p| p.step % every == 0)
        .collect();
    let v = json!({
        "steps_done": steps_done,
        "config": cfg,
        "parameters": report.parameters,
        "vocab_size": report.vocab_size,
        "tokens": report.tokens,
        "loss_tokens": report.loss_tokens,
        "seconds": report.seconds,
        "curve": curve,
    });
    let path = out.join(REPORT_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&v)?)
        .with_context(|| format!("writing {}", path.display()))
}
