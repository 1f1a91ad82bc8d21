//! `oneshot eval`: generate responses on the math benchmarks with the paper's protocol, check
//! them, and write per-sample records, `summary.json` and a paper-style table. An interrupted run
//! resumes from its `samples.jsonl`. The work is `oneshot_eval`'s; this module only wires the
//! command line to it.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use oneshot_data::checker::VerifyChecker;
use oneshot_data::prompt::PromptTemplate;
use oneshot_data::registry::{benchmark, BENCHMARKS};
use oneshot_data::scoring::{details_table, results_table};
use oneshot_eval::{run_benchmarks, Console, DecodingOverrides, EvalSpec, Generator, RunOptions};
use oneshot_hf::{resolve_model_dir, ChatTemplate, GenerationConfig, Tokenizer};
use oneshot_model::{parse_dtype, Model};
use oneshot_run::{command_line, write_run_json, Style};
use serde_json::json;

use crate::cmd::benchmarks::BenchmarkArgs;
use crate::cmd::threads::Threads;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a local HF directory or a hub id (org/name[@revision]).
    #[arg(long)]
    model: String,
    /// Benchmarks, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "math500,aime24,amc23,minerva_math,olympiadbench,aime25"
    )]
    benchmarks: Vec<String>,
    #[command(flatten)]
    data: BenchmarkArgs,
    /// Weight dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Prompt template: qwen25-math-cot (the paper's evaluation prompt), chat, plain.
    #[arg(long, default_value = "qwen25-math-cot")]
    template: PromptTemplate,
    /// Sequences decoding at once (continuous batching: finished ones are replaced).
    #[arg(long, default_value_t = oneshot_eval::generator::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    #[command(flatten)]
    threads: Threads,
    /// Sampling temperature for every benchmark (0 = greedy) [default: the benchmark's].
    #[arg(long)]
    temperature: Option<f64>,
    /// Samples per problem for every benchmark [default: the benchmark's, 1 or 8].
    #[arg(long)]
    samples: Option<usize>,
    /// Maximum new tokens per response [default: 3072].
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Nucleus sampling mass [default: 1.0].
    #[arg(long)]
    top_p: Option<f64>,
    /// Run seed; each sample's seed derives from it, the benchmark, the problem and the sample
    /// number [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Row label in the table [default: the model directory's name].
    #[arg(long)]
    name: Option<String>,
    /// Discard samples already in OUT instead of resuming from them.
    #[arg(long)]
    overwrite: bool,
    /// No progress bar or progress lines.
    #[arg(long)]
    no_progress: bool,
}

fn device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).context("opening CUDA device 0"),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::new_cuda(n).with_context(|| format!("opening CUDA device {n}")),
            _ => bail!("unknown device `{other}` (use cpu, cuda or cuda:N)"),
        },
    }
}

pub fn run(args: Args) -> Result<i32> {
    args.threads.apply()?;
    let overrides = DecodingOverrides {
        temperature: args.temperature,
        top_p: args.top_p,
        samples: args.samples,
        max_new_tokens: args.max_tokens,
        seed: args.seed,
    };
    let limit = args.data.limit();
    // Everything cheap is checked before the model is loaded.
    let source = args.data.source()?;
    let mut specs = Vec::new();
    for name in &args.benchmarks {
        let spec = benchmark(name.trim())?;
        let problems = spec.load(&source, VerifyChecker::extract_boxed)?;
        let mut eval = EvalSpec::for_benchmark(spec, problems);
        eval.decoding = overrides
            .apply(spec.decoding)
            .with_context(|| format!("decoding settings for {}", spec.name))?;
        eval.template = args.template;
        eval.limit = limit;
        specs.push(eval);
    }

    let dtype = parse_dtype(&args.dtype)?;
    let device = device(&args.device)?;
    let dir = resolve_model_dir(&args.model)?;
    let model = Model::from_dir(&dir, dtype, &device)
        .with_context(|| format!("loading model {}", dir.display()))?;
    let tokenizer = Tokenizer::from_dir(&dir)?;
    let generation = GenerationConfig::from_dir(&dir)?;
    let chat = if args.template.needs_chat_template() {
        let chat = ChatTemplate::from_dir(&dir)?;
        if chat.is_none() {
            bail!(
                "--template chat: model {} has no chat template (use qwen25-math-cot or plain)",
                dir.display()
            );
        }
        chat
    } else {
        None
    };
    let generator = Generator::new(&model, &tokenizer)
        .with_eos_ids(&generation.eos_token_ids)
        .with_chat_template(chat.as_ref())
        .with_batch_size(args.batch_size);

    let model_id = std::fs::canonicalize(&dir)
        .unwrap_or(dir.clone())
        .display()
        .to_string();
    let name = args.name.clone().unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.model.clone())
    });
    let out = args.data.out.clone();
    let config = json!({
        "model": model_id,
        "name": name,
        "dtype": args.dtype,
        "device": args.device,
        "template": args.template.name(),
        "batch_size": args.batch_size,
        "threads": rayon::current_num_threads(),
        "overwrite": args.overwrite,
        "data": args.data.record(),
        "benchmarks": specs.iter().map(|s| json!({
            "benchmark": s.benchmark,
            "decoding": s.decoding,
            "limit": s.limit.map(|l| l.to_string()),
            "problems": s.selected().len(),
        })).collect::<Vec<_>>(),
    });
    let mut record = write_run_json(&out, &command_line(), config)?;
    let options = RunOptions {
        out: out.clone(),
        name,
        model: model_id,
        dtype: args.dtype.clone(),
        overwrite: args.overwrite,
    };
    let report = run_benchmarks(
        &generator,
        &specs,
        &VerifyChecker::default(),
        &options,
        &Console::with_style(if args.no_progress {
            Style::Quiet
        } else {
            Style::Auto
        }),
    )?;
    record.finish(&crate::cmd::kernel_report())?;
    for run in &report.runs {
        eprintln!(
            "{}: {} samples generated, {} resumed from an earlier run",
            run.benchmark, run.generated, run.reused
        );
    }
    print!(
        "{}\n{}",
        results_table(std::slice::from_ref(&report.summary)),
        details_table(&report.summary)
    );
    if report.summary.six_benchmark_average.is_none() && specs.len() < BENCHMARKS.len() {
        eprintln!(
            "note: Avg is the six-benchmark average; it is shown only when all six are evaluated"
        );
    }
    eprintln!("wrote {}", out.display());
    Ok(0)
}
