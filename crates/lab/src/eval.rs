//! Greedy evaluation of a model on lab problems with the lab metric (strict / lenient / boxed,
//! and the working against the problems' gold steps), prompting exactly as RLVR training does: the training question through the chat template.
use crate::metrics::{Judged, LabJudge, LabScores};
use crate::splits::LabProblem;
use crate::tokenizer::{self, ENDOFTEXT, IM_END};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use oneshot_data::prompt::training_question;
use oneshot_hf::{ChatTemplate, Tokenizer};
use oneshot_model::{GenerateOptions, Model, SamplerConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    pub max_new_tokens: usize,
    /// Prompts generated together.
    pub batch_size: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 200,
            batch_size: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluated {
    pub idx: usize,
    pub family: crate::task::Family,
    pub answer: String,
    pub response: String,
    pub judged: Judged,
}

/// A lab model directory: weights, tokenizer and chat template (the lab's own template when the
/// directory has none).
pub struct LabModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

impl LabModel {
    pub fn load(dir: &Path) -> Result<Self> {
        let model = Model::from_dir(dir, DType::F32, &Device::Cpu)
            .with_context(|| format!("loading the model in {}", dir.display()))?;
        let tokenizer = Tokenizer::from_dir(dir)?;
        let template = match ChatTemplate::from_dir(dir)? {
            Some(t) => t,
            None => tokenizer::chat_template()?,
        };
        Ok(Self {
            model,
            tokenizer,
            template,
        })
    }

    /// Generation options for this model's responses: stop at the end of the assistant's turn
    /// (or of the text), pad with that token.
    pub fn generate_options(
        &self,
        sampler: SamplerConfig,
        max_new_tokens: usize,
    ) -> GenerateOptions {
        let eos: Vec<u32> = [IM_END, ENDOFTEXT]
            .iter()
            .filter_map(|t| self.tokenizer.token_to_id(t))
            .collect();
        GenerateOptions {
            sampler,
            max_new_tokens,
            pad_token_id: eos.last().copied().unwrap_or(0),
            eos_token_ids: eos,
            stop_sequences: Vec::new(),
        }
    }

    /// The tokens of the training prompt of `question`.
    pub fn prompt_ids(&self, question: &str) -> Result<Vec<u32>> {
        let text = tokenizer::render_prompt(&self.template, &training_question(question))?;
        self.tokenizer.encode(&text, false)
    }
}

/// Greedy responses to `problems`, judged.
pub fn evaluate_greedy(
    lab: &LabModel,
    problems: &[LabProblem],
    opts: &EvalOptions,
) -> Result<(Vec<Evaluated>, LabScores)> {
    let judge = LabJudge::default();
    let tok = &lab.tokenizer;
    let gen = lab.generate_options(SamplerConfig::greedy(), opts.max_new_tokens);
    let mut out = Vec::with_capacity(problems.len());
    for chunk in problems.chunks(opts.batch_size.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk
            .iter()
            .map(|p| lab.prompt_ids(&p.problem))
            .collect::<Result<_>>()?;
        let seeds: Vec<u64> = chunk.iter().map(|p| p.idx as u64).collect();
        let gens = lab.model.generate(&prompts, &seeds, &gen, None)?;
        let ids: Vec<Vec<u32>> = gens.into_iter().map(|g| g.tokens).collect();
        let texts = tok.decode_batch(&ids, true)?;
        for (p, response) in chunk.iter().zip(texts) {
            let judged = judge.judge(&response, &p.answer, &p.steps);
            out.push(Evaluated {
                idx: p.idx,
                family: p.family,
                answer: p.answer.clone(),
                response,
                judged,
            });
        }
    }
    let scores = LabScores::new(&out.iter().map(|e| (e.family, e.judged)).collect::<Vec<_>>());
    Ok((out, scores))
}
