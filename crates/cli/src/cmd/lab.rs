//! `oneshot lab`: the built-in synthetic math lab.
//!
//! - `generate --out DIR`: the RL pool (`pool.parquet`, verl format) and the held-out benchmark
//!   (`benchmark.jsonl`);
//! - `pretrain --out DIR`: tokenizer + small Qwen2 base model trained on the lab corpus;
//! - `eval --model DIR --data DIR`: greedy strict / lenient / boxed accuracy on the benchmark;
//! - `sample`: print a few pretraining documents (to see what the corpus looks like);
//! - `reproduce`: the paper's ablations on the lab (see `cmd/demo.rs`).
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
    Pretrain(PretrainArgs),
    /// Greedy evaluation of a model on the lab benchmark (strict / lenient / boxed).
    Eval(EvalArgs),
    /// Print pretraining documents.
    Sample(SampleArgs),
    /// The paper's ablations on the lab (base, full pool, pi_1, random example, no entropy,
    /// entropy only, format only, wrong label), several seeds: markdown table + json.
    Reproduce(super::demo::ReproduceArgs),
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
    /// A JSON file with a full or partial `PretrainConfig`; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
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
        Sub::Pretrain(a) => run_pretrain(a),
        Sub::Eval(a) => eval(a),
        Sub::Sample(a) => sample(a),
        Sub::Reproduce(a) => super::demo::reproduce(a),
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
    let mut cfg = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            // A partial file is laid over the defaults.
            let mut base = serde_json::to_value(PretrainConfig::default())?;
            let over: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            merge(&mut base, over);
            serde_json::from_value(base)
                .with_context(|| format!("{}: not a valid pretrain config", path.display()))?
        }
        None => PretrainConfig::default(),
    };
    macro_rules! set {
        ($flag:expr => $($field:tt)+) => { if let Some(v) = $flag { cfg.$($field)+ = v; } };
    }
    set!(a.seed => seed);
    set!(a.data_seed => data_seed);
    set!(a.steps => steps);
    set!(a.batch_size => batch_size);
    set!(a.lr => lr);
    set!(a.warmup_steps => warmup_steps);
    set!(a.vocab_size => vocab_size);
    set!(a.hidden_size => shape.hidden_size);
    set!(a.layers => shape.num_hidden_layers);
    set!(a.intermediate_size => shape.intermediate_size);
    set!(a.heads => shape.num_attention_heads);
    set!(a.kv_heads => shape.num_key_value_heads);
    set!(a.slip_rate => corpus.slip_rate);
    set!(a.save_every => save_every);
    set!(a.log_every => log_every);
    cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps);
    eprintln!("pretrain config: {}", serde_json::to_string(&cfg)?);
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
    Ok(0)
}

fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
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
