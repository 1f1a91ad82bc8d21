//! Periodic validation: greedy decoding on a benchmark subset, scored with the answer checker.
//! Kept behind this small module so it can switch over to `oneshot-eval` once that exists.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oneshot_data::problems::{read_jsonl_problems, ProblemFields};
use oneshot_data::prompt::{ChatRenderer, PromptTemplate};
use oneshot_data::registry::{benchmark, BenchmarkSource};
use oneshot_data::verl::ChatTurn;
use oneshot_hf::{ChatMessage, ChatTemplate};
use oneshot_model::{GenerateOptions, SamplerConfig};
use oneshot_verify::{Checker, CheckerOptions};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use crate::config::ValidationSection;
use crate::policy::Policy;

/// One validation set, tokenised.
pub struct ValSet {
    pub name: String,
    pub prompts: Vec<Vec<u32>>,
    pub labels: Vec<String>,
}

struct HfChat<'a>(&'a ChatTemplate);

impl ChatRenderer for HfChat<'_> {
    fn render_chat(&self, messages: &[ChatTurn], add_generation_prompt: bool) -> Result<String> {
        let msgs: Vec<ChatMessage> = messages.iter().map(|t| ChatMessage::new(&t.role, &t.content)).collect();
        self.0.render(&msgs, add_generation_prompt)
    }
}

fn extract_boxed(text: &str) -> Option<String> {
    oneshot_verify::last_boxed_only(text)
}

/// Loads and tokenises the configured benchmarks (registry names, or `.jsonl` paths with
/// `problem`/`answer` fields), each cut to the first `limit` problems.
pub fn load_sets(cfg: &ValidationSection, policy: &Policy) -> Result<Vec<ValSet>> {
    let template: PromptTemplate = cfg.prompt_template.parse().map_err(anyhow::Error::msg).context("validation.prompt_template")?;
    let chat = policy.chat.as_ref().map(HfChat);
    let chat_ref: Option<&dyn ChatRenderer> = chat.as_ref().map(|c| c as &dyn ChatRenderer);
    let mut sets = Vec::new();
    for name in &cfg.benchmarks {
        let problems = if name.ends_with(".jsonl") {
            read_jsonl_problems(Path::new(name), &ProblemFields::simple("problem", "answer"), extract_boxed)?
        } else {
            let source = BenchmarkSource::Dir(PathBuf::from(&cfg.data_dir));
            benchmark(name)?.load(&source, extract_boxed)?
        };
        let take = if cfg.limit == 0 { problems.len() } else { cfg.limit.min(problems.len()) };
        let mut set = ValSet { name: set_name(name), prompts: Vec::new(), labels: Vec::new() };
        for p in &problems[..take] {
            let text = template.render(&p.question, chat_ref).with_context(|| format!("validation set {name}"))?;
            set.prompts.push(policy.tokenizer.encode(&text, false)?);
            set.labels.push(p.label.clone());
        }
        sets.push(set);
    }
    Ok(sets)
}

fn set_name(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .filter(|_| name.ends_with(".jsonl"))
        .map_or(name.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Greedy accuracy on each set: `val/<name>/acc` and the mean response length.
pub fn validate(policy: &Policy, sets: &[ValSet], cfg: &ValidationSection) -> Result<Map<String, Value>> {
    let checker = Checker::new(CheckerOptions::default());
    let opts = GenerateOptions {
        sampler: SamplerConfig::greedy(),
        max_new_tokens: cfg.max_new_tokens,
        eos_token_ids: policy.eos_ids.clone(),
        stop_sequences: Vec::new(),
        pad_token_id: policy.pad_id,
    };
    let mut m = Map::new();
    for set in sets {
        let mut texts = Vec::with_capacity(set.prompts.len());
        let mut tokens = 0usize;
        for chunk in set.prompts.chunks(cfg.generation_batch_size.max(1)) {
            let seeds = vec![0u64; chunk.len()];
            for g in policy.model.generate(chunk, &seeds, &opts, None)? {
                tokens += g.tokens.len();
                texts.push(policy.decode(&g.tokens)?);
            }
        }
        let correct = texts.par_iter().zip(&set.labels).filter(|(t, l)| checker.check(t, l).correct).count();
        let n = set.prompts.len().max(1) as f64;
        m.insert(format!("val/{}/acc", set.name), json!(correct as f64 / n));
        m.insert(format!("val/{}/response_length", set.name), json!(tokens as f64 / n));
    }
    Ok(m)
}
