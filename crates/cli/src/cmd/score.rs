//! `oneshot score`: check responses generated elsewhere against a benchmark and write
//! `samples.jsonl` (one checked sample per line), `summary.json` and `table.md`.
//! The input format is documented in `oneshot_data::responses`.

use std::path::PathBuf;

use oneshot_data::prompt::PromptTemplate;
use oneshot_data::registry::benchmark;
use oneshot_data::responses::{attach_responses, read_responses};
use oneshot_data::sample_log::SampleLog;
use oneshot_data::scoring::{report_markdown, score_response, summarize, write_report, RunSummary};
use oneshot_run::{command_line, write_run_json, Progress};
use rayon::prelude::*;
use serde_json::json;

use crate::cmd::benchmarks::BenchmarkArgs;
use oneshot_data::checker::VerifyChecker;

#[derive(clap::Args)]
pub struct Args {
    /// Responses, one JSON object per line: {"idx": 3, "response": "..."} (see the README).
    #[arg(long)]
    responses: PathBuf,
    /// Benchmark name: math500, aime24, aime25, amc23, minerva_math, olympiadbench.
    #[arg(long)]
    benchmark: String,
    #[command(flatten)]
    data: BenchmarkArgs,
    /// Template that rebuilds the prompt recorded for lines without a `prompt` field
    /// (qwen25-math-cot or plain; chat needs a model, so it is for `eval`).
    #[arg(long, default_value = "qwen25-math-cot")]
    template: PromptTemplate,
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
    let source = args.data.source()?;
    let checker = VerifyChecker::default();
    let problems = spec.load(&source, VerifyChecker::extract_boxed)?;
    let keep = match args.data.limit() {
        Some(limit) => limit.select(problems.len()),
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

    let out = &args.data.out;
    let config = json!({
        "responses": args.responses,
        "benchmark": spec.name,
        "template": template.name(),
        "name": args.name,
        "resume": args.resume,
        "data": args.data.record(),
        "responses_scored": responses.len(),
    });
    let mut run = write_run_json(out, &command_line(), config)?;
    let (mut log, mut records) = SampleLog::open(&out.join("samples.jsonl"), args.resume)?;
    let todo: Vec<_> = responses
        .into_iter()
        .filter(|r| !log.is_done(r.idx, r.sample))
        .collect();
    let progress =
        Progress::new(format!("score {}", spec.name), todo.len() as u64).unit("responses");
    let scored: Vec<_> = todo
        .into_par_iter()
        .map(|r| {
            let record = score_response(&checker, spec.name, r);
            progress.inc(1);
            record
        })
        .collect();
    progress.finish();
    for record in scored {
        log.append(&record)?;
        records.push(record);
    }
    records.sort_by_key(|r| r.key());

    let summary = RunSummary::new(
        args.name,
        vec![summarize(spec.name, spec.column, &records)?],
    );
    write_report(out, &summary)?;
    run.finish(&crate::cmd::kernel_report())?;
    print!("{}", report_markdown(&summary));
    Ok(0)
}
