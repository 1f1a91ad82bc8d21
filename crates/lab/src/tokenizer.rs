//! The lab tokenizer: byte-level BPE trained with the `tokenizers` crate on the corpus, digits
//! split one per token (so that arithmetic is learnable digit by digit), Qwen2.5's special
//! tokens and a Qwen2.5-style chat template; saved in the HF layout.
use anyhow::{anyhow, Context, Result};
use oneshot_hf::{ChatMessage, ChatTemplate, Tokenizer};
use serde_json::json;
use std::path::Path;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, TokenizerBuilder};

pub const ENDOFTEXT: &str = "<|endoftext|>";
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
/// In id order: `<|endoftext|>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2.
pub const SPECIAL_TOKENS: [&str; 3] = [ENDOFTEXT, IM_START, IM_END];

/// Qwen2.5's chat layout (`<|im_start|>role\ncontent<|im_end|>\n`) without Qwen's default
/// system message, which would cost every short lab prompt a dozen tokens.
pub const CHAT_TEMPLATE: &str = "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Train a byte-level BPE tokenizer of `vocab_size` ids (specials and the 256 byte symbols
/// included) on `texts`.
pub fn train_tokenizer<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    if vocab_size < 256 + SPECIAL_TOKENS.len() {
        anyhow::bail!(
            "tokenizer vocab_size {vocab_size} must be at least {} (bytes + special tokens)",
            256 + SPECIAL_TOKENS.len()
        );
    }
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    let pre = PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]));
    let mut tk = TokenizerBuilder::<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(ModelWrapper::BPE(BPE::default()))
    .with_pre_tokenizer(Some(pre))
    .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())))
    .build()
    .map_err(|e| anyhow!("building the tokenizer pipeline: {e}"))?;
    tk.train(&mut trainer, texts)
        .map_err(|e| anyhow!("training the BPE tokenizer: {e}"))?;
    let json = tk
        .to_string(false)
        .map_err(|e| anyhow!("serialising the tokenizer: {e}"))?;
    let inner: tokenizers::Tokenizer = json
        .parse()
        .map_err(|e| anyhow!("reloading the trained tokenizer: {e}"))?;
    for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
        if inner.token_to_id(t) != Some(i as u32) {
            anyhow::bail!(
                "special token {t} got id {:?}, expected {i}",
                inner.token_to_id(t)
            );
        }
    }
    Ok(Tokenizer::from_inner(inner))
}

pub fn chat_template() -> Result<ChatTemplate> {
    ChatTemplate::from_str(CHAT_TEMPLATE, None, Some(IM_END.to_string()))
}

/// The prompt text of a user message through the chat template, ready for generation.
pub fn render_prompt(template: &ChatTemplate, user: &str) -> Result<String> {
    template.render(&[ChatMessage::user(user)], true)
}

/// Files that make `dir` an HF tokenizer directory: `tokenizer.json`, `tokenizer_config.json`
/// (with the chat template), `special_tokens_map.json`, `generation_config.json`.
pub fn write_tokenizer_files(
    dir: &Path,
    tokenizer: &Tokenizer,
    model_max_length: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tokenizer.save(&dir.join(oneshot_hf::files::TOKENIZER))?;
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": false,
        "add_prefix_space": false,
        "bos_token": null,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "unk_token": null,
        "additional_special_tokens": [IM_START, IM_END],
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": false,
        "errors": "replace",
        "model_max_length": model_max_length,
        "split_special_tokens": false,
    });
    let special = json!({
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "additional_special_tokens": [IM_START, IM_END],
    });
    let gen = generation_config();
    for (name, value) in [
        (oneshot_hf::files::TOKENIZER_CONFIG, config),
        (oneshot_hf::files::SPECIAL_TOKENS_MAP, special),
        (oneshot_hf::files::GENERATION_CONFIG, gen),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Greedy by default; a turn ends at `<|im_end|>` (or `<|endoftext|>`).
pub fn generation_config() -> serde_json::Value {
    json!({
        "bos_token_id": null,
        "eos_token_id": [2, 0],
        "pad_token_id": 0,
        "do_sample": false,
        "transformers_version": "4.46.0",
    })
}
