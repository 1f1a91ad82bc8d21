//! `oneshot score`: check responses generated elsewhere against a benchmark and write
//! `samples.jsonl` (one checked sample per line), `summary.json` and `table.md`.
//! The input format is documented in `oneshot_data::responses`.

use std::path::PathBuf;

use anyhow::Context;
use oneshot_data::prompt::PromptTemplate;
use oneshot_data::registry::{benchmark, BenchmarkSource};
use oneshot_data::responses::{attach_responses, read_responses};
use oneshot_data::sample_log::SampleLog;
use oneshot_data::scoring::{report_markdown, score_response, summarize, write_report, RunSummary};
use oneshot_data::subset::Limit;
use rayon::prelude::*;

use oneshot_data::checker::VerifyChecker;

#[derive(clap::Args)]
pub struct Args {
    /// Responses, one JSON object per line: {"idx": 3, "response": "..."} (see the README).
    #[arg(long)]
    responses: PathBuf,
    /// Benchmark name: math500, aime24, aime25, amc23, minerva_math, olympiadbench.
    #[arg(long)]
    benchmark: String,
    /// Output directory (samples.jsonl, summary.json, table.md).
    #[arg(long)]
    out: PathBuf,
    /// Benchmark data directory laid out as DIR/<benchmark>/test.jsonl [default: $ONESHOT_DATA].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Hugging Face dataset repo with the same layout, used when no data directory is given.
    #[arg(long)]
    hub_repo: Option<String>,
    #[arg(long)]
    hub_revision: Option<String>,
    /// Template that rebuilds the prompt recorded for lines without a `prompt` field
    /// (qwen25-math-cot or plain; chat needs a model, so it is for `eval`).
    #[arg(long, default_value = "qwen25-math-cot")]
    template: PromptTemplate,
    /// Score only N problems: the first N, or N drawn with --limit-seed (ascending order).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, requires = "limit")]
    limit_seed: Option<u64>,
    /// Row label in the table.
    #[arg(long, default_value = "model")]
    name: String,
    /// Keep the samples already in OUT/samples.jsonl and score only the rest.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    anyhow::ensure!(
        !args.template.needs_chat_template(),
        "--template chat needs the model's chat template; use `oneshot eval`, or qwen25-math-cot / plain"
    );
    let spec = benchmark(&args.benchmark)?;
    let source = BenchmarkSource::resolve(
        args.data_dir.as_deref(),
        args.hub_repo.as_deref(),
        args.hub_revision.as_deref(),
    )?;
    let checker = VerifyChecker::default();
    let problems = spec.load(&source, VerifyChecker::extract_boxed)?;
    let keep = match args.limit {
        Some(n) => Limit::new(n, args.limit_seed).select(problems.len()),
        None => (0..problems.len()).collect(),
    };
    let chosen: Vec<_> = keep.iter().map(|&i| problems[i].clone()).collect();

    let lines = read_responses(&args.responses)?;
    let template = args.template;
    let render = move |q: &str| template.render(q, None).unwrap_or_default();
    let (responses, outside) =
        attach_responses(&args.responses, lines, &chosen, problems.len(), &render)?;
    if outside > 0 {
        eprintln!("note: {outside} response(s) are for problems outside the --limit subset and were not scored");
    }

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (mut log, mut records) = SampleLog::open(&args.out.join("samples.jsonl"), args.resume)?;
    let todo: Vec<_> = responses
        .into_iter()
        .filter(|r| !log.is_done(r.idx, r.sample))
        .collect();
    let scored: Vec<_> = todo
        .into_par_iter()
        .map(|r| score_response(&checker, spec.name, r))
        .collect();
    for record in scored {
        log.append(&record)?;
        records.push(record);
    }
    records.sort_by_key(|r| r.key());

    let run = RunSummary::new(
        args.name,
        vec![summarize(spec.name, spec.column, &records)?],
    );
    write_report(&args.out, &run)?;
    print!("{}", report_markdown(&run));
    Ok(0)
}
