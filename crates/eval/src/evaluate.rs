//! In-memory evaluation of one benchmark: generate every (problem, sample) of the evaluated
//! subset, check it, summarise. No files: this is what the trainer's periodic validation calls,
//! and what the file-writing runner ([`crate::runner`]) is built on.

use std::collections::HashMap;

use anyhow::{ensure, Result};
use oneshot_data::checker::VerifyChecker;
use oneshot_data::problems::Problem;
use oneshot_data::prompt::PromptTemplate;
use oneshot_data::registry::{BenchmarkSpec, Decoding};
use oneshot_data::scoring::{
    score_response, summarize, AnswerChecker, BenchmarkSummary, Response, SampleRecord,
};
use oneshot_data::subset::Limit;
use oneshot_model::FinishReason;
use rayon::prelude::*;

use crate::generator::{finish_reason_name, Generator};
use crate::progress::Progress;
use crate::protocol;
use crate::seeds::sample_seed;

/// What to evaluate: a benchmark's problems, how to decode, which prompt, which subset.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSpec {
    /// Benchmark name (registry name; also the name in records and seeds).
    pub benchmark: String,
    /// Column header in the results table.
    pub column: String,
    /// All problems of the benchmark, in file order (`problems[i].idx == i`).
    pub problems: Vec<Problem>,
    pub decoding: Decoding,
    pub template: PromptTemplate,
    /// Evaluate only this subset; `None` evaluates every problem.
    pub limit: Option<Limit>,
}

impl EvalSpec {
    /// A registry benchmark with its paper protocol and the `qwen25-math-cot` prompt.
    pub fn for_benchmark(spec: &BenchmarkSpec, problems: Vec<Problem>) -> Self {
        EvalSpec {
            benchmark: spec.name.to_owned(),
            column: spec.column.to_owned(),
            problems,
            decoding: spec.decoding,
            template: PromptTemplate::Qwen25MathCot,
            limit: None,
        }
    }

    /// The evaluated problems, ascending.
    pub fn selected(&self) -> Vec<&Problem> {
        match self.limit {
            Some(limit) => limit
                .select(self.problems.len())
                .into_iter()
                .map(|i| &self.problems[i])
                .collect(),
            None => self.problems.iter().collect(),
        }
    }

    /// Number of samples a complete evaluation holds.
    pub fn total_samples(&self) -> usize {
        self.selected().len() * self.decoding.samples
    }
}

/// One checked sample with how its generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalSample {
    pub record: SampleRecord,
    pub finish: FinishReason,
}

/// One pending rollout.
struct Job<'p> {
    problem: &'p Problem,
    sample: usize,
}

/// Generates and checks every (problem, sample) of `spec` for which `done(idx, sample)` is false,
/// in (problem, sample) order, handing each to `on_sample` as soon as its batch is finished
/// (`progress` hears of each sample as its generation ends). Returns how many samples were
/// generated.
pub fn run_samples(
    generator: &Generator,
    spec: &EvalSpec,
    checker: &dyn AnswerChecker,
    done: &dyn Fn(usize, usize) -> bool,
    progress: &dyn Progress,
    on_sample: &mut dyn FnMut(EvalSample) -> Result<()>,
) -> Result<usize> {
    protocol::check(&spec.decoding)?;
    for (i, p) in spec.problems.iter().enumerate() {
        ensure!(
            p.idx == i,
            "{}: problem at position {i} has idx {} (problems must be in file order)",
            spec.benchmark,
            p.idx
        );
    }
    let selected = spec.selected();
    ensure!(
        !selected.is_empty(),
        "{}: no problems to evaluate (the benchmark or the --limit subset is empty)",
        spec.benchmark
    );
    let samples = spec.decoding.samples;
    let jobs: Vec<Job> = selected
        .iter()
        .flat_map(|&problem| (0..samples).map(move |sample| Job { problem, sample }))
        .filter(|job| !done(job.problem.idx, job.sample))
        .collect();
    progress.start(
        &spec.benchmark,
        selected.len() * samples,
        selected.len() * samples - jobs.len(),
    );

    // Each problem's prompt is rendered and encoded once, however many samples it has.
    let mut prompts: HashMap<usize, (String, Vec<u32>)> = HashMap::new();
    for job in &jobs {
        if let std::collections::hash_map::Entry::Vacant(slot) = prompts.entry(job.problem.idx) {
            let text = generator.render(spec.template, &job.problem.question)?;
            let ids = generator.encode_prompt(spec.template, &text)?;
            slot.insert((text, ids));
        }
    }

    for batch in jobs.chunks(generator.batch_size() * crate::generator::CALL_BATCHES) {
        let ids: Vec<Vec<u32>> = batch
            .iter()
            .map(|j| prompts[&j.problem.idx].1.clone())
            .collect();
        let seeds: Vec<u64> = batch
            .iter()
            .map(|j| sample_seed(spec.decoding.seed, &spec.benchmark, j.problem.idx, j.sample))
            .collect();
        let generated = generator
            .generate_reporting(&ids, &seeds, &spec.decoding, &mut || progress.advance(1))?;
        let scored: Vec<EvalSample> = batch
            .par_iter()
            .zip(generated)
            .map(|(job, g)| {
                let response = Response {
                    idx: job.problem.idx,
                    sample: job.sample,
                    prompt: prompts[&job.problem.idx].0.clone(),
                    response: g.text,
                    gold: job.problem.label.clone(),
                    n_tokens: Some(g.n_tokens),
                    truncated: Some(g.finish == FinishReason::Length),
                };
                let mut record = score_response(checker, &spec.benchmark, response);
                record.finish_reason = Some(finish_reason_name(g.finish).to_owned());
                EvalSample {
                    record,
                    finish: g.finish,
                }
            })
            .collect();
        for sample in scored {
            on_sample(sample)?;
        }
    }
    progress.finish();
    Ok(jobs.len())
}

/// Evaluates `spec` in memory with the project's answer checker; returns every sample (in
/// (problem, sample) order) and the summary.
pub fn evaluate_samples(
    generator: &Generator,
    spec: &EvalSpec,
    progress: &dyn Progress,
) -> Result<(Vec<EvalSample>, BenchmarkSummary)> {
    let checker = VerifyChecker::default();
    let mut samples = Vec::with_capacity(spec.total_samples());
    run_samples(
        generator,
        spec,
        &checker,
        &|_, _| false,
        progress,
        &mut |s| {
            samples.push(s);
            Ok(())
        },
    )?;
    let records: Vec<SampleRecord> = samples.iter().map(|s| s.record.clone()).collect();
    let summary = summarize(&spec.benchmark, &spec.column, &records)?;
    Ok((samples, summary))
}

/// Evaluates `spec` in memory: accuracy / avg@k, pass@k, lengths, truncation, reflection.
pub fn evaluate(
    generator: &Generator,
    spec: &EvalSpec,
    progress: &dyn Progress,
) -> Result<BenchmarkSummary> {
    Ok(evaluate_samples(generator, spec, progress)?.1)
}
