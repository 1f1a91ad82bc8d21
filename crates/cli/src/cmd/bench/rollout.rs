//! `oneshot bench rollout`: the 1-shot RLVR rollout on random weights of a config's shape:
//! `--samples` responses of one `--prompt-len`-token prompt at temperature 0.6, continuous
//! batching over `--batch` slots, each response ending at its own seeded length (drawn by
//! [`lengths`], which `scripts/bench_rollout_torch.py` reproduces), so sequences finish at
//! different times and both sides generate the same number of tokens.
//!
//! Reports generated tokens/s (sum of the lengths over the wall time, prefill included), the
//! time to the last token, the KV cache's peak bytes, and the machine's limits measured in the
//! same run: the best 2-thread read bandwidth over a buffer of at least 4x the last-level
//! cache, and the best f32 matmul throughput. `--check-logprobs N` recomputes the first N
//! responses' log-probs with the trainer's forward and reports the largest and mean
//! |difference| from those the sampler recorded.
use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use oneshot_model::{
    parse_dtype, Batch, GenerateOptions, LogprobOptions, MatmulPrecision, Model, ModelConfig,
    SamplerConfig,
};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// HF config.json describing the shape (weights are random).
    #[arg(long)]
    config: PathBuf,
    /// Weight dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Projection products: f32, or bf16 operands with f32 accumulation.
    #[arg(long, default_value = "f32")]
    matmul: String,
    #[command(flatten)]
    threads: crate::cmd::threads::Threads,
    /// Responses of the one prompt.
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Sequences decoding at once (continuous batching slots); default: all samples.
    #[arg(long)]
    batch: Option<usize>,
    /// Longest response; each response's length is drawn in [max_new/4, max_new].
    #[arg(long, default_value_t = 512)]
    max_new: usize,
    /// Prompt tokens.
    #[arg(long, default_value_t = 150)]
    prompt_len: usize,
    #[arg(long, default_value_t = 0.6)]
    temperature: f64,
    /// Seed of the response lengths and the sampling streams.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Recompute the first N responses' log-probs with the trainer's forward and compare.
    #[arg(long, default_value_t = 0)]
    check_logprobs: usize,
    /// Skip the bandwidth and matmul measurements.
    #[arg(long)]
    no_limits: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// splitmix64: the length stream, chosen because it is a few lines in any language.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Response lengths: sample i gets `lo + splitmix64(seed * 1_000_003 + i) % (max_new - lo + 1)`
/// with `lo = max(1, max_new / 4)` (the torch script computes the same).
pub fn lengths(samples: usize, max_new: usize, seed: u64) -> Vec<usize> {
    let lo = (max_new / 4).max(1);
    let span = (max_new - lo + 1) as u64;
    (0..samples as u64)
        .map(|i| lo + (splitmix64(seed.wrapping_mul(1_000_003).wrapping_add(i)) % span) as usize)
        .collect()
}

/// The prompt: `prompt_len` token ids spread over the vocabulary (same formula as the torch
/// script).
fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len as u64)
        .map(|i| ((i * 2_654_435_761 + 17) % vocab as u64) as u32)
        .collect()
}

pub fn run(args: Args) -> Result<i32> {
    args.threads.apply()?;
    ensure!(args.samples >= 1, "--samples must be at least 1");
    ensure!(args.max_new >= 1, "--max-new must be at least 1");
    ensure!(args.prompt_len >= 1, "--prompt-len must be at least 1");
    let batch = args.batch.unwrap_or(args.samples);
    ensure!(batch >= 1, "--batch must be at least 1");
    let dtype = parse_dtype(&args.dtype).context("--dtype")?;
    let matmul: MatmulPrecision = args.matmul.parse().context("--matmul")?;
    let cfg = ModelConfig::from_file(&args.config)?;
    let threads = rayon::current_num_threads();
    let model = Model::random(cfg.clone(), dtype, &Device::Cpu, 0)
        .context("building random model")?
        .with_matmul_precision(matmul);
    let lens = lengths(args.samples, args.max_new, args.seed);
    let prompts = vec![prompt(args.prompt_len, cfg.vocab_size); args.samples];
    let seeds: Vec<u64> = (0..args.samples as u64)
        .map(|i| args.seed * 1_000_003 + i)
        .collect();
    let opts = GenerateOptions {
        sampler: SamplerConfig {
            temperature: args.temperature,
            top_p: 1.0,
            top_k: 0,
        },
        max_new_tokens: args.max_new,
        eos_token_ids: vec![],
        stop_sequences: vec![],
        pad_token_id: 0,
    };
    let mut stop = |seq: usize, toks: &[u32]| toks.len() >= lens[seq];
    let t = Instant::now();
    let report = model.generate_report(&prompts, &seeds, &opts, batch, Some(&mut stop))?;
    let wall = t.elapsed().as_secs_f64();
    let generated: usize = report.generations.iter().map(|g| g.tokens.len()).sum();
    ensure!(
        generated == lens.iter().sum::<usize>(),
        "generated {generated} tokens, the lengths sum to {}",
        lens.iter().sum::<usize>()
    );

    let check = (args.check_logprobs > 0)
        .then(|| check_logprobs(&model, &prompts, &report.generations, &args))
        .transpose()?;
    let limits = (!args.no_limits).then(measure_limits);
    // Per decoded token every weight is read once per step (bound at small batches) and each
    // token costs ~2 flops per parameter (bound at large ones).
    let bytes_per_weight = match matmul {
        MatmulPrecision::Bf16 => 2,
        MatmulPrecision::F32 => dtype.size_in_bytes(),
    };
    let params = cfg.num_parameters();
    let weight_bytes = params * bytes_per_weight;
    let isa = oneshot_kernels::isa::summary();
    let tokens_per_s = generated as f64 / wall;
    if args.json {
        let mut j = serde_json::json!({
            "impl": "oneshot",
            "config": args.config.display().to_string(),
            "dtype": args.dtype,
            "matmul": args.matmul,
            "isa": isa.active.name(),
            "threads": threads,
            "samples": args.samples,
            "batch": batch,
            "max_new": args.max_new,
            "prompt_len": args.prompt_len,
            "temperature": args.temperature,
            "seed": args.seed,
            "generated_tokens": generated,
            "wall_s": wall,
            "time_to_last_token_s": wall,
            "tokens_per_s": tokens_per_s,
            "peak_kv_cache_bytes": report.peak_cache_bytes,
            "prefilled_prompts": report.prefilled_prompts,
            "weight_bytes": weight_bytes,
        });
        if let Some(l) = &limits {
            j["read_bandwidth_gbs"] = l.read_gbs.into();
            j["bandwidth_buffer_bytes"] = l.buffer_bytes.into();
            j["matmul_gflops"] = l.gflops.into();
            j["compute_limit_tokens_per_s"] = (l.gflops * 1e9 / (2.0 * params as f64)).into();
            j["bandwidth_limit_batch1_tokens_per_s"] =
                (l.read_gbs * 1e9 / weight_bytes as f64).into();
        }
        if let Some((max, mean, n)) = check {
            j["logprob_diff_max"] = max.into();
            j["logprob_diff_mean"] = mean.into();
            j["logprob_tokens_checked"] = n.into();
        }
        println!("{j}");
        return Ok(0);
    }
    println!(
        "rollout bench: {} ({:.0}M params), dtype {}, matmul {}, isa {}, threads {threads}",
        args.config.display(),
        params as f64 / 1e6,
        args.dtype,
        args.matmul,
        isa.active.name()
    );
    println!(
        "{} samples of one {}-token prompt, {batch} slots, lengths {}..={} (sum {generated}), T {}",
        args.samples,
        args.prompt_len,
        lens.iter().min().unwrap(),
        lens.iter().max().unwrap(),
        args.temperature
    );
    println!(
        "generated {generated} tokens in {wall:.2} s: {tokens_per_s:.1} tok/s, last token at {wall:.2} s"
    );
    println!(
        "KV cache peak {:.1} MiB ({} prompt prefill{})",
        report.peak_cache_bytes as f64 / (1 << 20) as f64,
        report.prefilled_prompts,
        if report.prefilled_prompts == 1 {
            ""
        } else {
            "s"
        }
    );
    if let Some(l) = limits {
        println!(
            "limits: read bandwidth {:.1} GB/s (2 threads, {} MiB buffer) -> batch-1 decode <= {:.1} tok/s; f32 matmul {:.1} GFLOP/s -> <= {:.1} tok/s",
            l.read_gbs,
            l.buffer_bytes >> 20,
            l.read_gbs * 1e9 / weight_bytes as f64,
            l.gflops,
            l.gflops * 1e9 / (2.0 * params as f64)
        );
    }
    if let Some((max, mean, n)) = check {
        println!(
            "log-probs recorded by the sampler vs recomputed by the trainer's forward ({n} tokens): max |diff| {max:.2e}, mean {mean:.2e}"
        );
    }
    Ok(0)
}

/// Largest and mean |sampler log-prob - recomputed log-prob| over the first
/// `args.check_logprobs` responses, and the tokens compared.
fn check_logprobs(
    model: &Model,
    prompts: &[Vec<u32>],
    gens: &[oneshot_model::Generation],
    args: &Args,
) -> Result<(f64, f64, usize)> {
    let n = args.check_logprobs.min(gens.len());
    let (mut max, mut sum, mut count) = (0.0f64, 0.0f64, 0usize);
    for i in 0..n {
        let g = &gens[i];
        let (batch, start) =
            Batch::prompt_response(&prompts[i..=i], std::slice::from_ref(&g.tokens), 0)?;
        let (lp, _) =
            model.token_logprobs(&batch, start, args.temperature, &LogprobOptions::default())?;
        let lp = lp.to_vec2::<f32>()?;
        for (a, b) in g.logprobs.iter().zip(&lp[0]) {
            let d = (*a as f64 - *b as f64).abs();
            max = max.max(d);
            sum += d;
            count += 1;
        }
    }
    Ok((max, sum / count.max(1) as f64, count))
}

struct Limits {
    read_gbs: f64,
    buffer_bytes: usize,
    gflops: f64,
}

/// Largest cache of cpu0 (sysfs), or 32 MiB when it cannot be read.
fn last_level_cache_bytes() -> usize {
    let mut best = 0;
    for i in 0..8 {
        let p = format!("/sys/devices/system/cpu/cpu0/cache/index{i}/size");
        let Ok(s) = std::fs::read_to_string(p) else {
            continue;
        };
        let s = s.trim();
        let (num, mult) = match s.strip_suffix('K') {
            Some(n) => (n, 1 << 10),
            None => match s.strip_suffix('M') {
                Some(n) => (n, 1 << 20),
                None => (s, 1),
            },
        };
        if let Ok(n) = num.parse::<usize>() {
            best = best.max(n * mult);
        }
    }
    if best == 0 {
        32 << 20
    } else {
        best
    }
}

/// Best-of-5 2-thread read of a buffer of at least 4x the last-level cache (and 256 MiB), and
/// best-of-3 f32 1024^3 matmul throughput on the bench's threads.
fn measure_limits() -> Limits {
    use rayon::prelude::*;
    let bytes = (4 * last_level_cache_bytes()).max(256 << 20);
    let n = bytes / 4;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a 2-thread pool");
    let buf: Vec<f32> = pool.install(|| {
        (0..n)
            .into_par_iter()
            .map(|i| (i % 7) as f32)
            .collect::<Vec<f32>>()
    });
    let mut best = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..5 {
        let t = Instant::now();
        sink += pool.install(|| {
            buf.par_chunks(n.div_ceil(2))
                .map(|c| {
                    // 8 independent accumulators: a vectorised streaming read.
                    let mut acc = [0.0f32; 8];
                    for x in c.chunks_exact(8) {
                        for l in 0..8 {
                            acc[l] += x[l];
                        }
                    }
                    acc.iter().sum::<f32>()
                })
                .sum::<f32>()
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    let gflops = matmul_gflops().unwrap_or(0.0);
    Limits {
        read_gbs: bytes as f64 / best / 1e9,
        buffer_bytes: bytes,
        gflops,
    }
}

fn matmul_gflops() -> Result<f64> {
    let n = 1024;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = Instant::now();
        std::hint::black_box(a.matmul(&b)?);
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_seeded_spread_and_in_range() {
        let a = lengths(256, 512, 0);
        assert_eq!(a, lengths(256, 512, 0));
        assert_ne!(a, lengths(256, 512, 1));
        assert!(a.iter().all(|&l| (128..=512).contains(&l)));
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(distinct.len() > 100, "{} distinct lengths", distinct.len());
        assert_eq!(lengths(3, 1, 5), vec![1, 1, 1]);
        // splitmix64's published first output for state 0 (the torch script's check too).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }
}
