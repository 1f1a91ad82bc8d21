//! `oneshot bench model`: speed of the model engine on random weights of any supported shape.
//!
//! Measures (each after one untimed warm-up where it matters):
//! - forward: response log-probs + entropies of a `rows x seq` batch (no graph), tokens/s;
//! - decode: KV-cache sampling at several batch sizes, generated tokens/s (prefill excluded);
//! - train step: forward + backward of a GRPO-like loss over the batch, then an AdamW update of
//!   every variable (the fused optimizer of `oneshot-rl`, or `--plain-adamw` for candle ops);
//! - memory bandwidth (copy and read-only sum over 1 GiB), and decode at batch 1 as a fraction
//!   of the bandwidth limit (weight bytes per token / read bandwidth).
//!
//! `--device cuda[:N]` runs the same measurements on a GPU (with `--features cuda`), each timed
//! region ending in a device synchronisation; the host bandwidth lines are skipped there.
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use oneshot_model::{
    parse_dtype, Batch, GenerateOptions, LogprobOptions, Model, ModelConfig, SamplerConfig,
};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// HF config.json describing the shape (weights are random).
    #[arg(long)]
    config: PathBuf,
    /// Device: cpu, cuda (device 0) or cuda:N (needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weight dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Projection products: f32, or bf16 operands with f32 accumulation (forward and
    /// backward; PyTorch's CPU autocast semantics).
    #[arg(long, default_value = "f32")]
    matmul: String,
    #[command(flatten)]
    threads: crate::cmd::threads::Threads,
    /// Rows of the forward / training batch.
    #[arg(long, default_value_t = 4)]
    rows: usize,
    /// Tokens per row of the forward / training batch (rows x seq = 512 by default).
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Prompt tokens per row of that batch; the rest is the response.
    #[arg(long, default_value_t = 32)]
    prompt: usize,
    /// Decode batch sizes, comma separated.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    decode_batches: Vec<usize>,
    /// New tokens per sequence in the decode measurement.
    #[arg(long, default_value_t = 16)]
    decode_tokens: usize,
    /// Skip the training step (it needs ~4x the weights' memory for grads and AdamW state).
    #[arg(long)]
    no_train: bool,
    /// Timed forward passes (after one warm-up); more make a steadier profile.
    #[arg(long, default_value_t = 2)]
    forward_reps: usize,
    /// Recompute layers in the backward pass of the training step.
    #[arg(long)]
    recompute_layers: bool,
    /// Logits rows per chunk of the output head.
    #[arg(long, default_value_t = 256)]
    chunk_rows: usize,
    /// Use the unfused candle-op AdamW baseline instead of oneshot-rl's fused AdamW.
    #[arg(long)]
    plain_adamw: bool,
    /// Train LoRA adapters of this rank (all-linear, alpha = 2r) on the frozen base instead
    /// of every weight; decoding is timed with the adapters applied per token, then on a
    /// merged copy (and the merge itself).
    #[arg(long)]
    lora: Option<usize>,
    /// Only the training step (no forward, bandwidth or decode measurements), so the peak
    /// resident memory printed at the end is the step's.
    #[arg(long)]
    train_only: bool,
}

pub fn run(args: Args) -> Result<i32> {
    args.threads.apply()?;
    if args.prompt == 0 || args.prompt >= args.seq {
        anyhow::bail!("--prompt must be in 1..{} (--seq)", args.seq);
    }
    let dtype = parse_dtype(&args.dtype)?;
    let cfg = ModelConfig::from_file(&args.config)?;
    let spec: oneshot_model::DeviceSpec = args.device.parse()?;
    let device = spec
        .open()
        .with_context(|| format!("--device {}", args.device))?;
    println!(
        "model bench: {} ({:.0}M params, {} layers, hidden {}), device {spec}, dtype {:?}, matmul {}, threads {}",
        args.config.display(),
        cfg.num_parameters() as f64 / 1e6,
        cfg.num_hidden_layers,
        cfg.hidden_size,
        dtype,
        args.matmul,
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let matmul: oneshot_model::MatmulPrecision = args.matmul.parse()?;
    let model = Model::random(cfg.clone(), dtype, &device, 0)
        .context("building random model")?
        .with_matmul_precision(matmul);
    let model = match args.lora {
        Some(r) => {
            let mut m = model;
            let cfg = oneshot_model::LoraConfig {
                r,
                alpha: 2.0 * r as f64,
                dropout: 0.0,
                targets: oneshot_model::LoraTarget::ALL.to_vec(),
                use_rslora: false,
            };
            m.add_lora(cfg, 0)?;
            // The main decode measurement applies the adapters per token; the merged copy
            // is timed after it.
            if let Some(l) = m.lora_mut() {
                l.set_merge_for_decode(false);
            }
            let n: usize = m.vars().iter().map(|(_, v)| v.elem_count()).sum();
            println!(
                "LoRA r={r} all-linear: {:.2}M adapter parameters",
                n as f64 / 1e6
            );
            m
        }
        None => model,
    };
    println!("random init: {:.1} s", t.elapsed().as_secs_f64());
    let vocab = cfg.vocab_size as u32;
    let token = |i: usize| ((i as u64 * 2654435761) % vocab as u64) as u32;

    // Forward log-probs.
    let prompts: Vec<Vec<u32>> = (0..args.rows)
        .map(|r| (0..args.prompt).map(|i| token(r * 1000 + i)).collect())
        .collect();
    let responses: Vec<Vec<u32>> = (0..args.rows)
        .map(|r| {
            (0..args.seq - args.prompt)
                .map(|i| token(r * 1000 + 500 + i))
                .collect()
        })
        .collect();
    let (batch, start) = Batch::prompt_response(&prompts, &responses, 0)?;
    let opts = LogprobOptions {
        chunk_rows: args.chunk_rows,
        recompute_layers: args.recompute_layers,
    };
    let tokens = args.rows * args.seq;
    if args.train_only {
        // Random init holds a host copy of every weight for a moment; the peak of interest
        // starts from the built model.
        reset_peak_rss();
        return train_step(&args, &model, &batch, start, &opts, tokens);
    }
    let faults0 = minor_faults();
    let reps = args.forward_reps.max(1);
    let fwd = time(&device, reps, || {
        model.token_logprobs(&batch, start, 0.6, &opts).map(|_| ())
    })?;
    let faults = minor_faults()
        .zip(faults0)
        .map(|(b, a)| (b - a) / (reps as u64 + 1));
    println!(
        "forward log-probs {}x{}: {:.3} s, {:.1} tok/s{}",
        args.rows,
        args.seq,
        fwd,
        tokens as f64 / fwd,
        faults
            .map(|f| format!(" ({} MiB of fresh pages per call)", f * 4 / 1024))
            .unwrap_or_default()
    );

    // Host memory bandwidth: the bound of CPU decoding (not measured for a GPU).
    let bw = bandwidth::measure(if device.is_cpu() { 1 << 30 } else { 0 }, 3);
    if device.is_cpu() {
        println!(
            "memory bandwidth (1 GiB, {} threads): copy {:.1} GB/s (read+write bytes), read {:.1} GB/s",
            rayon::current_num_threads(),
            bw.copy_gbs,
            bw.read_gbs
        );
    }
    // Bytes streamed per decoded token: every weight once, in the dtype decoding reads (bf16
    // products decode from a bf16 copy of the weights).
    let bytes_per_weight = |v: &candle_core::Var| match matmul {
        oneshot_model::MatmulPrecision::Bf16 if v.rank() == 2 => 2,
        _ => v.dtype().size_in_bytes(),
    };
    let weight_bytes = model
        .base_vars()
        .iter()
        .map(|(_, v)| v.elem_count() * bytes_per_weight(v))
        .sum::<usize>();

    // Decoding.
    for &b in &args.decode_batches {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|r| (0..16 + r % 8).map(|i| token(r * 77 + i)).collect())
            .collect();
        let seeds: Vec<u64> = (0..b as u64).collect();
        let gen = GenerateOptions {
            sampler: SamplerConfig {
                temperature: 0.6,
                top_p: 1.0,
                top_k: 0,
            },
            max_new_tokens: args.decode_tokens,
            eos_token_ids: vec![],
            stop_sequences: vec![],
            pad_token_id: 0,
        };
        // Prefill + 1 token, to subtract the prefill from the full run.
        let one = GenerateOptions {
            max_new_tokens: 1,
            ..gen.clone()
        };
        // The fastest of 3 runs each: a single stall in either run (page faults, a noisy
        // neighbour on a VM) would otherwise land whole in the per-step difference.
        let t_one = fastest(&device, 3, || {
            model.generate(&prompts, &seeds, &one, None).map(|_| ())
        })?;
        let t_all = fastest(&device, 3, || {
            model.generate(&prompts, &seeds, &gen, None).map(|_| ())
        })?;
        let steps = (args.decode_tokens - 1) as f64;
        let per_step = (t_all - t_one) / steps;
        println!(
            "decode batch {b:>2}: {:.1} tok/s ({:.1} ms/step, prefill+first token {:.2} s)",
            b as f64 / per_step,
            per_step * 1e3,
            t_one
        );
        if b == 1 && device.is_cpu() {
            let limit = bw.read_gbs * 1e9 / weight_bytes as f64;
            println!(
                "  bandwidth limit at batch 1: {:.1} tok/s ({:.2} GB of weights per token); reached {:.0}%",
                limit,
                weight_bytes as f64 / 1e9,
                100.0 / per_step / limit
            );
        }
    }

    if model.lora().is_some() {
        decode_merged(&args, &model, token)?;
    }
    if args.no_train {
        return Ok(0);
    }
    train_step(&args, &model, &batch, start, &opts, tokens)
}

/// Decoding with the adapters merged into a copy (made once, timed) instead of applied per
/// token, at the same batch sizes.
fn decode_merged(args: &Args, model: &Model, token: impl Fn(usize) -> u32) -> Result<()> {
    let t = Instant::now();
    let merged = model.merged()?;
    println!(
        "merge adapters into a decoding copy: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    for &b in &args.decode_batches {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|r| (0..16 + r % 8).map(|i| token(r * 77 + i)).collect())
            .collect();
        let seeds: Vec<u64> = (0..b as u64).collect();
        let gen = GenerateOptions {
            sampler: SamplerConfig {
                temperature: 0.6,
                top_p: 1.0,
                top_k: 0,
            },
            max_new_tokens: args.decode_tokens,
            eos_token_ids: vec![],
            stop_sequences: vec![],
            pad_token_id: 0,
        };
        let one = GenerateOptions {
            max_new_tokens: 1,
            ..gen.clone()
        };
        let t_one = time(model.device(), 1, || {
            merged.generate(&prompts, &seeds, &one, None).map(|_| ())
        })?;
        let t_all = time(model.device(), 1, || {
            merged.generate(&prompts, &seeds, &gen, None).map(|_| ())
        })?;
        let per_step = (t_all - t_one) / (args.decode_tokens - 1) as f64;
        println!(
            "decode batch {b:>2}, adapters merged: {:.1} tok/s ({:.1} ms/step)",
            b as f64 / per_step,
            per_step * 1e3
        );
    }
    Ok(())
}

/// Training step: forward + backward, then AdamW (over the adapters only with --lora).
fn train_step(
    args: &Args,
    model: &Model,
    batch: &Batch,
    start: usize,
    opts: &LogprobOptions,
    tokens: usize,
) -> Result<i32> {
    let vars: Vec<Var> = model.vars().into_iter().map(|(_, v)| v).collect();
    let mut optimizer = if args.plain_adamw {
        Optimizer::Plain(AdamW::new(&vars)?)
    } else {
        let cfg = oneshot_optim::AdamWConfig {
            max_grad_norm: None,
            ..Default::default()
        };
        Optimizer::Fused(oneshot_optim::AdamW::new(model.vars(), cfg)?)
    };
    let n_tok = (tokens - args.rows * args.prompt) as f64;
    // Two whole steps, timing the second: the first pays for first-touch page faults of every
    // fresh buffer (gradients, activations, ~4 GB of AdamW moments), which a training run pays
    // once (the PyTorch script does the same).
    let (mut fwd_bwd, mut opt) = (0.0, 0.0);
    for _ in 0..2 {
        let t = Instant::now();
        let (_, grads) = model.logprobs_with_grad(batch, start, 0.6, opts, |lp, en| {
            // The shape of the GRPO loss: advantage-weighted log-probs plus an entropy bonus.
            Ok(((lp.sum_all()? * (-1.0 / n_tok))? - (en.sum_all()? * (0.001 / n_tok))?)?)
        })?;
        model.device().synchronize()?;
        fwd_bwd = t.elapsed().as_secs_f64();
        let t = Instant::now();
        match &mut optimizer {
            Optimizer::Plain(adam) => adam.step(&vars, &grads)?,
            Optimizer::Fused(adam) => {
                adam.step(&grads, 1e-6)?;
            }
        }
        model.device().synchronize()?;
        opt = t.elapsed().as_secs_f64();
    }
    println!(
        "train step {}x{}: {:.2} s (forward+backward {:.2} s, {} AdamW {:.2} s){}",
        args.rows,
        args.seq,
        fwd_bwd + opt,
        fwd_bwd,
        match &optimizer {
            Optimizer::Plain(_) => "plain",
            Optimizer::Fused(adam) => match adam.path() {
                oneshot_optim::StepPath::Host => "fused",
                oneshot_optim::StepPath::Generic => "device-generic",
            },
        },
        opt,
        if args.recompute_layers {
            ", layers recomputed"
        } else {
            ""
        }
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "peak resident memory: {:.2} GiB{}",
            kib as f64 / (1 << 20) as f64,
            if args.train_only {
                " (since the model was built; ONESHOT_MALLOC=system returns freed blocks)"
            } else {
                " (includes the 2 GiB bandwidth buffers; --train-only for the step alone)"
            }
        );
    }
    Ok(0)
}

/// Restarts the peak resident set count at the current size (Linux `clear_refs` value 5;
/// elsewhere nothing happens).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Minor page faults of this process so far (Linux `/proc/self/stat` field 10): each is a
/// fresh 4 KiB page the kernel zeroed, the cost that allocator reuse avoids.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(7)?.parse().ok()
}

/// Median-free simple timing: one warm-up run, then the mean of `reps` runs, in seconds; the
/// device is synchronised before the clock stops (GPU kernels run asynchronously).
fn time(device: &Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    device.synchronize()?;
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    device.synchronize()?;
    Ok(t.elapsed().as_secs_f64() / reps as f64)
}

/// Seconds of the fastest of `reps` calls of `f`, after one warm-up call.
fn fastest(device: &Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        device.synchronize()?;
        let t = Instant::now();
        f()?;
        device.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

enum Optimizer {
    Plain(AdamW),
    Fused(oneshot_optim::AdamW),
}

/// A plain (unfused) AdamW with f32 moments, as a baseline for the training step; the real
/// optimizer lives in oneshot-rl.
struct AdamW {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl AdamW {
    fn new(vars: &[Var]) -> Result<Self> {
        let z = |v: &Var| Tensor::zeros(v.shape(), DType::F32, v.device());
        Ok(Self {
            m: vars.iter().map(z).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(z).collect::<candle_core::Result<_>>()?,
            t: 0,
        })
    }

    fn step(&mut self, vars: &[Var], grads: &candle_core::backprop::GradStore) -> Result<()> {
        let (lr, b1, b2, eps, wd): (f64, f64, f64, f64, f64) = (1e-6, 0.9, 0.999, 1e-8, 0.01);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.to_dtype(DType::F32)?;
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + eps)?)?;
            let w = var.as_tensor().to_dtype(DType::F32)?;
            let new = ((&w * (1.0 - lr * wd))? - (upd * lr)?)?;
            var.set(&new.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}

/// Memory bandwidth of this machine with the bench's thread count, the denominator of the
/// decode roofline. Buffers are far larger than any cache; each thread works on its own slice.
mod bandwidth {
    use rayon::prelude::*;
    use std::time::Instant;

    pub struct Bandwidth {
        /// Bytes read plus bytes written per second by a parallel slice copy, in GB/s.
        pub copy_gbs: f64,
        /// Bytes read per second by a parallel sum (the access pattern of a GEMV), in GB/s.
        pub read_gbs: f64,
    }

    /// Best of `reps` passes over `bytes`-sized buffers (best, because other processes only
    /// ever make a pass slower).
    pub fn measure(bytes: usize, reps: usize) -> Bandwidth {
        let n = bytes / 4;
        // Non-constant contents so the sum cannot be folded; written in parallel so the pages
        // are spread over the threads that will read them.
        let mut src = vec![0f32; n];
        src.par_chunks_mut(1 << 16)
            .enumerate()
            .for_each(|(i, c)| c.iter_mut().for_each(|x| *x = (i % 7) as f32));
        let mut dst = vec![0f32; n];
        dst.par_chunks_mut(1 << 16).for_each(|c| c.fill(1.0));
        let chunk = n.div_ceil(rayon::current_num_threads() * 8).max(1);
        let mut copy = f64::INFINITY;
        let mut read = f64::INFINITY;
        let mut sink = 0f32;
        for _ in 0..reps {
            let t = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            copy = copy.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            sink += src.par_chunks(chunk).map(sum_lanes).sum::<f32>();
            read = read.min(t.elapsed().as_secs_f64());
        }
        std::hint::black_box((sink, &dst));
        Bandwidth {
            copy_gbs: 2.0 * bytes as f64 / copy / 1e9,
            read_gbs: bytes as f64 / read / 1e9,
        }
    }

    /// Sum with 16 independent accumulators so the loop is bound by loads, not by the
    /// latency of one dependent add chain.
    fn sum_lanes(s: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let mut it = s.chunks_exact(16);
        for c in &mut it {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
    }
}
