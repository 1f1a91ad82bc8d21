//! `tokenizer.json` through the `tokenizers` crate.

use crate::files;
use anyhow::{anyhow, Result};
use std::path::Path;

/// A loaded HF fast tokenizer.
///
/// Padding and truncation settings stored in `tokenizer.json` are switched off at load: callers get
/// exactly the ids of the text they pass and do their own batching/padding.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| anyhow!("disabling truncation of tokenizer {}: {e}", path.display()))?;
        Ok(Self { inner })
    }

    /// Load `<dir>/tokenizer.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(files::TOKENIZER);
        if !path.is_file() {
            anyhow::bail!(
                "no {} in model directory {}",
                files::TOKENIZER,
                dir.display()
            );
        }
        Self::from_file(&path)
    }

    /// Wrap an already built `tokenizers::Tokenizer` (padding/truncation are left as they are).
    pub fn from_inner(inner: tokenizers::Tokenizer) -> Self {
        Self { inner }
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| anyhow!("encoding text ({} bytes): {e}", text.len()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encode many texts; the `tokenizers` crate spreads them over the rayon pool.
    pub fn encode_batch(
        &self,
        texts: &[String],
        add_special_tokens: bool,
    ) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encs = self
            .inner
            .encode_batch(inputs, add_special_tokens)
            .map_err(|e| anyhow!("encoding a batch of {} texts: {e}", texts.len()))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| anyhow!("decoding {} token ids: {e}", ids.len()))
    }

    /// Decode many sequences in parallel.
    pub fn decode_batch(&self, ids: &[Vec<u32>], skip_special_tokens: bool) -> Result<Vec<String>> {
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        self.inner
            .decode_batch(&refs, skip_special_tokens)
            .map_err(|e| anyhow!("decoding a batch of {} sequences: {e}", ids.len()))
    }

    pub fn token_to_id(&self, t: &str) -> Option<u32> {
        self.inner.token_to_id(t)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids the tokenizer can produce, added tokens included. The model's embedding
    /// matrix may be larger (Qwen2.5 pads it to 151936); never smaller.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Save as `tokenizer.json` (pretty-printed like `save_pretrained`).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, true)
            .map_err(|e| anyhow!("saving tokenizer to {}: {e}", path.display()))
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}
