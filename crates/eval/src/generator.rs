//! The engine side of evaluation: prompts to token ids, batched sampling with the model's KV
//! cache, generated ids back to text.

use anyhow::{ensure, Context, Result};
use oneshot_data::prompt::{ChatRenderer, PromptTemplate};
use oneshot_data::registry::Decoding;
use oneshot_data::verl::ChatTurn;
use oneshot_hf::{ChatMessage, ChatTemplate, Tokenizer};
use oneshot_model::{FinishReason, GenerateOptions, Model, SamplerConfig};

/// Stop words of the Qwen2.5-Math evaluation harness for its chat-style prompts; each one that is
/// a single token of the tokenizer ends generation (in addition to the model's own eos ids).
pub const HARNESS_STOP_TOKENS: [&str; 3] = ["</s>", "<|im_end|>", "<|endoftext|>"];

/// Rollouts per `Model::generate` call unless set otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// One finished response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Decoded with special tokens skipped (the stop token is not part of the text).
    pub text: String,
    /// Generated tokens, the final stop token included.
    pub n_tokens: usize,
    pub finish: FinishReason,
}

/// Everything needed to turn questions into responses: the model, its tokenizer, the chat
/// template (for `--template chat`), the stop tokens and the batch size.
pub struct Generator<'a> {
    model: &'a Model,
    tokenizer: &'a Tokenizer,
    chat: Option<&'a ChatTemplate>,
    eos_ids: Vec<u32>,
    batch_size: usize,
}

/// Running batches' worth of samples per engine call: the batch stays full while a call's
/// samples last (finished ones are replaced), and results are logged after each call.
pub const CALL_BATCHES: usize = 4;

/// `oneshot-hf`'s chat template as the data crate's renderer.
struct HfChat<'a>(&'a ChatTemplate);

impl ChatRenderer for HfChat<'_> {
    fn render_chat(&self, messages: &[ChatTurn], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<ChatMessage> = messages
            .iter()
            .map(|t| ChatMessage::new(&t.role, &t.content))
            .collect();
        self.0.render(&messages, add_generation_prompt)
    }
}

impl<'a> Generator<'a> {
    /// A generator stopping at the harness stop tokens the tokenizer has.
    pub fn new(model: &'a Model, tokenizer: &'a Tokenizer) -> Self {
        let eos_ids = HARNESS_STOP_TOKENS
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        Generator {
            model,
            tokenizer,
            chat: None,
            eos_ids,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Also stop at these ids (the model's `generation_config.json` eos ids).
    pub fn with_eos_ids(mut self, ids: &[u32]) -> Self {
        for &id in ids {
            if !self.eos_ids.contains(&id) {
                self.eos_ids.push(id);
            }
        }
        self
    }

    /// The model's chat template, needed by [`PromptTemplate::Chat`].
    pub fn with_chat_template(mut self, chat: Option<&'a ChatTemplate>) -> Self {
        self.chat = chat;
        self
    }

    /// Sequences decoding at once (at least 1); each engine call takes [`CALL_BATCHES`] times
    /// as many and refills finished slots with waiting ones (continuous batching). Results do
    /// not depend on it: every sample has its own random stream.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The prompt text of a question under `template`.
    pub fn render(&self, template: PromptTemplate, question: &str) -> Result<String> {
        let chat = self.chat.map(HfChat);
        template.render(question, chat.as_ref().map(|c| c as &dyn ChatRenderer))
    }

    /// Token ids of a rendered prompt. A chat template writes its own BOS, so special tokens are
    /// added only for the raw-text templates (as vLLM does for a text prompt).
    pub fn encode_prompt(&self, template: PromptTemplate, prompt: &str) -> Result<Vec<u32>> {
        let ids = self
            .tokenizer
            .encode(prompt, !template.needs_chat_template())?;
        ensure!(
            !ids.is_empty(),
            "the prompt encodes to no tokens: {prompt:?}"
        );
        Ok(ids)
    }

    /// One response per (prompt, seed), sampled with `decoding`'s temperature / top-p / length.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        decoding: &Decoding,
    ) -> Result<Vec<Generated>> {
        self.generate_reporting(prompts, seeds, decoding, &mut || {})
    }

    /// [`Generator::generate`], calling `on_finished` as each sequence finishes (progress
    /// within an engine call, which can run for minutes).
    pub fn generate_reporting(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        decoding: &Decoding,
        on_finished: &mut dyn FnMut(),
    ) -> Result<Vec<Generated>> {
        // The engine reports no finishes, so the stop ids are checked here instead, in the
        // per-token stop check: it sees every token of every sequence before the length limit
        // is applied. Only this check can end a sequence with `Stop`, so `Stop` means a stop id.
        let options = GenerateOptions {
            sampler: SamplerConfig {
                temperature: decoding.temperature,
                top_p: decoding.top_p,
                top_k: 0,
            },
            max_new_tokens: decoding.max_new_tokens,
            eos_token_ids: Vec::new(),
            stop_sequences: Vec::new(),
            pad_token_id: 0,
        };
        let mut finished = 0usize;
        let mut check = |_seq: usize, tokens: &[u32]| {
            let stop = tokens.last().is_some_and(|t| self.eos_ids.contains(t));
            if stop || tokens.len() >= decoding.max_new_tokens {
                finished += 1;
                on_finished();
            }
            stop
        };
        let generations = self
            .model
            .generate_continuous(prompts, seeds, &options, self.batch_size, Some(&mut check))
            .context("generating responses")?;
        for _ in finished..prompts.len() {
            on_finished();
        }
        let ids: Vec<Vec<u32>> = generations.iter().map(|g| g.tokens.clone()).collect();
        let texts = self.tokenizer.decode_batch(&ids, true)?;
        Ok(generations
            .into_iter()
            .zip(texts)
            .map(|(g, text)| Generated {
                text,
                n_tokens: g.tokens.len(),
                finish: match g.finish {
                    FinishReason::Stop => FinishReason::Eos,
                    other => other,
                },
            })
            .collect())
    }
}

/// How a finish reason is written in the sample files: `length` is what `oneshot score` reads as
/// truncated.
pub fn finish_reason_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Eos => "eos",
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}
