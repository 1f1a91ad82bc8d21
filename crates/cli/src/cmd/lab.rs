//! `oneshot lab`: the built-in synthetic math lab.
//!
//! - `generate --out DIR`: the RL pool (`pool.parquet`, verl format) and the held-out benchmark
//!   (`benchmark.jsonl`);
//! - `pretrain --out DIR`: tokenizer + small Qwen2 base model trained on the lab corpus;
//! - `eval --model DIR --data DIR`: greedy strict / lenient / boxed accuracy on the benchmark;
//! - `sample`: print a few pretraining documents (to see what the corpus looks like);
//! - `reproduce`: the paper's ablations on the lab (see `cmd/demo.rs`);
//! - `selection`: 1-shot runs on the top, random and bottom examples of the variance ranking.
use std::path::PathBuf;

use anyhow::Context;
use oneshot_lab::corpus::Corpus;
use oneshot_lab::eval::{evaluate_greedy, EvalOptions, LabModel};
use oneshot_lab::splits::{files, read_jsonl, write_splits, SplitConfig};
use oneshot_lab::{pretrain, PretrainConfig, Progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Write the training pool and the held-out benchmark.
    Generate(GenerateArgs),
    /// Train the tokenizer and the base model on the lab corpus.
    Pretrain(Box<PretrainArgs>),
    /// Greedy evaluation of a model on the lab benchmark (strict / lenient / boxed).
    Eval(EvalArgs),
    /// Print pretraining documents.
    Sample(SampleArgs),
    /// The paper's ablations on the lab (base, full pool, pi_1, random example, no entropy,
    /// entropy only, format only, wrong label), several seeds: markdown table + json.
    Reproduce(super::demo::ReproduceArgs),
    /// Historical-variance selection against chance: 1-shot runs on the top-k, k random and
    /// the bottom-k examples of one selection pass's ranking, several seeds each (resumable).
    Selection(super::demo::SelectionArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 1000)]
    pool_size: usize,
    #[arg(long, default_value_t = 500)]
    bench_size: usize,
}

#[derive(clap::Args)]
struct PretrainArgs {
    /// Output checkpoint directory (HF layout).
    #[arg(long)]
    out: PathBuf,
    /// A TOML file with a full or partial pretraining config (keys as `--print-config`
    /// shows them); the flags below and `--set` override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config key: `--set corpus.slip_rate=0.1 --set shape.hidden_size=128`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved config and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    threads: super::threads::Threads,
    #[arg(long)]
    seed: Option<u64>,
    /// Seed of the pool/benchmark kept out of the corpus.
    #[arg(long)]
    data_seed: Option<u64>,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    warmup_steps: Option<usize>,
    #[arg(long)]
    vocab_size: Option<usize>,
    #[arg(long)]
    hidden_size: Option<usize>,
    #[arg(long)]
    layers: Option<usize>,
    #[arg(long)]
    intermediate_size: Option<usize>,
    #[arg(long)]
    heads: Option<usize>,
    #[arg(long)]
    kv_heads: Option<usize>,
    #[arg(long)]
    slip_rate: Option<f64>,
    #[arg(long)]
    save_every: Option<usize>,
    #[arg(long)]
    log_every: Option<usize>,
    /// Hide the progress bar (log lines only), e.g. under nohup.
    #[arg(long)]
    no_progress: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    /// Directory written by `oneshot lab generate`.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate the first N problems only.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Write per-problem responses (jsonl) here.
    #[arg(long)]
    responses: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SampleArgs {
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 5)]
    n: u64,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Sub::Generate(a) => generate(a),
        Sub::Pretrain(a) => run_pretrain(*a),
        Sub::Eval(a) => eval(a),
        Sub::Sample(a) => sample(a),
        Sub::Reproduce(a) => super::demo::reproduce(a),
        Sub::Selection(a) => super::demo::selection(a),
    }
}

fn generate(a: GenerateArgs) -> anyhow::Result<i32> {
    let pool_cfg = SplitConfig {
        size: a.pool_size,
        ..SplitConfig::pool()
    };
    let bench_cfg = SplitConfig {
        size: a.bench_size,
        ..SplitConfig::benchmark()
    };
    let (p, b) = write_splits(&a.out, a.seed, &pool_cfg, &bench_cfg)?;
    println!(
        "wrote {} pool problems and {} benchmark problems to {}",
        p.len(),
        b.len(),
        a.out.display()
    );
    Ok(0)
}

fn run_pretrain(a: PretrainArgs) -> anyhow::Result<i32> {
    a.threads.apply()?;
    // Flags are overrides laid over the file, and `--set` over the flags, as for `train`.
    let flags: [(&str, Option<String>); 15] = [
        ("seed", a.seed.map(|v| v.to_string())),
        ("data_seed", a.data_seed.map(|v| v.to_string())),
        ("steps", a.steps.map(|v| v.to_string())),
        ("batch_size", a.batch_size.map(|v| v.to_string())),
        ("lr", a.lr.map(|v| format!("{v:e}"))),
        ("warmup_steps", a.warmup_steps.map(|v| v.to_string())),
        ("vocab_size", a.vocab_size.map(|v| v.to_string())),
        ("shape.hidden_size", a.hidden_size.map(|v| v.to_string())),
        ("shape.num_hidden_layers", a.layers.map(|v| v.to_string())),
        (
            "shape.intermediate_size",
            a.intermediate_size.map(|v| v.to_string()),
        ),
        ("shape.num_attention_heads", a.heads.map(|v| v.to_string())),
        (
            "shape.num_key_value_heads",
            a.kv_heads.map(|v| v.to_string()),
        ),
        ("corpus.slip_rate", a.slip_rate.map(|v| format!("{v:e}"))),
        ("save_every", a.save_every.map(|v| v.to_string())),
        ("log_every", a.log_every.map(|v| v.to_string())),
    ];
    let mut overrides: Vec<String> = flags
        .into_iter()
        .filter_map(|(key, v)| Some(format!("{key}={}", v?)))
        .collect();
    overrides.extend(a.set.iter().cloned());
    let mut cfg: PretrainConfig = oneshot_config::load(a.config.as_deref(), &overrides)?;
    cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps);
    if a.print_config {
        print!("{}", oneshot_config::to_toml(&cfg)?);
        return Ok(0);
    }
    let (_, _, report) = pretrain(
        &cfg,
        Some(&a.out),
        &Progress {
            bar: !a.no_progress,
        },
    )?;
    let (head, tail) = report.head_tail(20);
    println!(
        "pretrained {} parameters (vocab {}) for {} steps in {:.0}s ({:.0} tokens/s): loss {head:.3} -> {tail:.3}; saved to {}",
        report.parameters,
        report.vocab_size,
        cfg.steps,
        report.seconds,
        report.tokens as f64 / report.seconds.max(1e-9),
        a.out.display()
    );
    // The record goes in once the checkpoint exists: pretraining refuses a non-empty output
    // directory that is not its own checkpoint, and each save replaces the directory.
    let mut record = oneshot_run::write_run_json(
        &a.out,
        &oneshot_run::command_line(),
        serde_json::to_value(&cfg)?,
    )?;
    record.set("pretrain_seconds", serde_json::json!(report.seconds))?;
    record.finish(&crate::cmd::kernel_report())?;
    Ok(0)
}

fn eval(a: EvalArgs) -> anyhow::Result<i32> {
    let lab = LabModel::load(&a.model)?;
    let mut problems = read_jsonl(&a.data.join(files::BENCHMARK_JSONL))?;
    if let Some(n) = a.limit {
        problems.truncate(n);
    }
    let opts = EvalOptions {
        max_new_tokens: a.max_new_tokens,
        ..EvalOptions::default()
    };
    let started = std::time::Instant::now();
    let (items, scores) = evaluate_greedy(&lab, &problems, &opts)?;
    println!("{}", scores.table());
    eprintln!(
        "{} problems in {:.1}s",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.responses {
        let mut text = String::new();
        for e in &items {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

fn sample(a: SampleArgs) -> anyhow::Result<i32> {
    let corpus = Corpus::new(Default::default(), a.seed, Default::default())?;
    for i in 0..a.n {
        let d = corpus.document(i);
        println!(
            "--- {} level {} ({:?}{}) gold {}\n[user] {}\n[assistant]\n{}\n",
            d.task.family,
            d.task.difficulty,
            d.form,
            if d.task.slipped { ", slipped" } else { "" },
            d.task.gold_text(),
            d.user,
            d.solution
        );
    }
    Ok(0)
}
