//! Periodic validation through `oneshot-eval`: the same prompt templates, stop tokens, decoding
//! protocol, answer checker and metrics as `oneshot eval`, so a validation number of a run and an
//! `oneshot eval` of its checkpoint on the same subset agree.
//!
//! A validation set is a registry benchmark (`<data_dir>/<name>/test.jsonl`, decoded with the
//! benchmark's protocol: greedy, or temperature 0.6 x 8 samples for AIME/AMC) or a `.jsonl` file
//! with `problem`/`answer` fields (greedy, one sample). `max_new_tokens` replaces the protocol's
//! length; `limit` keeps the first N problems.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oneshot_data::checker::VerifyChecker;
use oneshot_data::problems::{read_jsonl_problems, ProblemFields};
use oneshot_data::prompt::PromptTemplate;
use oneshot_data::registry::{benchmark, BenchmarkSource, Decoding};
use oneshot_data::subset::Limit;
use oneshot_eval::{evaluate, EvalSpec, Generator, Silent};

use crate::config::ValidationSection;
use crate::metrics::validation_metrics;
use crate::policy::Policy;

/// The evaluation specs of the configured validation sets, problems loaded once at start.
pub fn load_sets(cfg: &ValidationSection, policy: &Policy) -> Result<Vec<EvalSpec>> {
    let template: PromptTemplate = cfg.prompt_template;
    if template.needs_chat_template() && policy.chat.is_none() {
        bail!(
            "validation.prompt_template = chat, but {} has no chat template (use qwen25-math-cot or plain)",
            policy.source_dir.display()
        );
    }
    if cfg.max_new_tokens == 0 {
        bail!("validation.max_new_tokens must be at least 1");
    }
    let mut sets = Vec::new();
    for name in &cfg.benchmarks {
        let mut spec = if name.ends_with(".jsonl") {
            let path = Path::new(name);
            let problems = read_jsonl_problems(
                path,
                &ProblemFields::simple("problem", "answer"),
                VerifyChecker::extract_boxed,
            )
            .with_context(|| format!("validation set {name}"))?;
            let stem = path
                .file_stem()
                .map_or(name.clone(), |s| s.to_string_lossy().into_owned());
            EvalSpec {
                benchmark: stem.clone(),
                column: stem,
                problems,
                decoding: Decoding::GREEDY,
                template,
                limit: None,
            }
        } else {
            let spec =
                benchmark(name).with_context(|| format!("validation.benchmarks entry `{name}`"))?;
            let problems = spec
                .load(&data_source(&cfg.data_dir)?, VerifyChecker::extract_boxed)
                .with_context(|| format!("validation set {name} (validation.data_dir)"))?;
            EvalSpec::for_benchmark(spec, problems)
        };
        spec.template = template;
        spec.decoding.max_new_tokens = cfg.max_new_tokens;
        spec.limit = (cfg.limit > 0).then_some(Limit::First(cfg.limit));
        if spec.problems.is_empty() {
            bail!("validation set {name} holds no problems");
        }
        sets.push(spec);
    }
    Ok(sets)
}

/// `validation.data_dir`, or `$ONESHOT_DATA` when it is empty.
fn data_source(data_dir: &str) -> Result<BenchmarkSource> {
    let dir = (!data_dir.is_empty()).then(|| PathBuf::from(data_dir));
    Ok(BenchmarkSource::resolve(dir.as_deref(), None, None)?)
}

/// Evaluates the policy on every set with `oneshot_eval::evaluate`.
pub fn validate(
    policy: &Policy,
    sets: &[EvalSpec],
    cfg: &ValidationSection,
) -> Result<BTreeMap<String, f64>> {
    let generator = Generator::new(&policy.model, &policy.tokenizer)
        .with_eos_ids(&policy.eos_ids)
        .with_chat_template(policy.chat.as_ref())
        .with_batch_size(cfg.generation_batch_size);
    let mut m = BTreeMap::new();
    for spec in sets {
        let summary = evaluate(&generator, spec, &Silent)
            .with_context(|| format!("validating on {}", spec.benchmark))?;
        m.extend(validation_metrics(&summary));
    }
    Ok(m)
}
