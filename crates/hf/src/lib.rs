//! Hugging Face formats at the edge.
//!
//! Everything that touches a file layout defined by the Hugging Face ecosystem lives here, so the
//! rest of the workspace only sees plain tensors, token ids and strings:
//! - [`resolve_model_dir`]: local directory or hub id (standard HF cache, offline mode honoured);
//! - [`load_safetensors`] / [`write_checkpoint`]: single-file or sharded safetensors, atomic saves;
//! - [`Tokenizer`]: `tokenizer.json` through the `tokenizers` crate;
//! - [`ChatTemplate`]: the Jinja chat template from `tokenizer_config.json`, rendered with minijinja;
//! - [`GenerationConfig`]: `generation_config.json` (with `config.json` fallback for token ids).

mod chat_template;
mod checkpoint;
mod generation_config;
mod hub;
mod pyjson;
mod safetensors_load;
mod tokenizer;

pub use chat_template::{ChatMessage, ChatTemplate};
pub use checkpoint::{
    write_checkpoint, write_checkpoint_with, WriteOptions, DEFAULT_MAX_SHARD_BYTES,
};
pub use generation_config::GenerationConfig;
pub use hub::{hub_cache_dir, resolve_model_dir, HubSpec};
pub use safetensors_load::load_safetensors;
pub use tokenizer::Tokenizer;

/// File names of the HF checkpoint layout, shared by the loader, the writer and the hub resolver.
pub mod files {
    pub const CONFIG: &str = "config.json";
    pub const GENERATION_CONFIG: &str = "generation_config.json";
    pub const TOKENIZER: &str = "tokenizer.json";
    pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
    pub const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";
    pub const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
    pub const WEIGHTS: &str = "model.safetensors";
    pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";
    /// Side files copied verbatim from the source checkpoint when saving, when present.
    pub const TOKENIZER_SIDE_FILES: &[&str] = &[
        TOKENIZER,
        TOKENIZER_CONFIG,
        GENERATION_CONFIG,
        SPECIAL_TOKENS_MAP,
        CHAT_TEMPLATE_JINJA,
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
    ];
}
