//! The policy stack loaded from an HF model directory: weights, tokenizer, chat template, and
//! the special tokens generation stops at.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use oneshot_hf::{ChatTemplate, GenerationConfig, Tokenizer};
use oneshot_model::Model;

pub struct Policy {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub chat: Option<ChatTemplate>,
    pub eos_ids: Vec<u32>,
    pub pad_id: u32,
    /// The directory the model came from (tokenizer side files are copied from here on save).
    pub source_dir: PathBuf,
}

impl Policy {
    /// Loads weights from `weights_dir` and everything else (tokenizer, chat template,
    /// generation config) from `source_dir`; they are the same directory except when resuming.
    pub fn load(
        weights_dir: &Path,
        source_dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let model = Model::from_dir(weights_dir, dtype, device)
            .with_context(|| format!("loading the model from {}", weights_dir.display()))?;
        let tokenizer = Tokenizer::from_dir(source_dir)?;
        let chat = ChatTemplate::from_dir(source_dir)?;
        let gen = GenerationConfig::from_dir(source_dir)?;
        let mut eos_ids = gen.eos_token_ids.clone();
        // Chat models end a turn with <|im_end|> even when generation_config names another eos.
        if let Some(id) = tokenizer.token_to_id("<|im_end|>") {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        if eos_ids.is_empty() {
            bail!(
                "{}: no eos token id in generation_config.json or config.json",
                source_dir.display()
            );
        }
        let pad_id = gen.pad_token_id.unwrap_or(eos_ids[0]);
        Ok(Self {
            model,
            tokenizer,
            chat,
            eos_ids,
            pad_id,
            source_dir: source_dir.to_path_buf(),
        })
    }

    /// Decodes a response for the reward (special tokens such as eos dropped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true)
    }
}
