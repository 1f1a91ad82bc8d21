//! A toy verifiable task and tiny model directories, for the trainer's tests and benchmarks.
//!
//! The task: one prompt ("what is the answer ?"), label "7". The word-level vocabulary holds
//! ten answer words `\boxed{0}` .. `\boxed{9}` (one token each), a few filler words and the
//! special tokens. A response of up to `max_response_length` tokens is rewarded by the real
//! checker when its last `\boxed{}` holds 7, so a random-init policy starts near 1 / vocab.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use oneshot_data::verl::{write_verl_parquet, ChatTurn, VerlRow};
use oneshot_model::{Model, ModelConfig};
use serde_json::json;

use crate::config::TrainConfig;

pub const PAD: &str = "<pad>";
pub const EOS: &str = "<eos>";
const FILLER: [&str; 7] = ["what", "is", "the", "answer", "?", "so", "<unk>"];

/// The toy vocabulary: specials, answer words, fillers.
pub fn toy_vocab() -> Vec<String> {
    let mut v: Vec<String> = vec![PAD.into(), EOS.into()];
    v.extend((0..10).map(|d| format!("\\boxed{{{d}}}")));
    v.extend(FILLER.iter().map(|s| s.to_string()));
    v
}

/// A `tokenizer.json` for a whitespace-split word-level vocabulary (ids in list order; the
/// first two words are the special pad and eos tokens).
pub fn word_level_tokenizer_json(words: &[String]) -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), json!(i)))
        .collect();
    let special = |id: usize| {
        json!({"id": id, "content": words[id], "single_word": false, "lstrip": false, "rstrip": false,
               "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0), special(1)],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
}

/// A Qwen2-style config of the given shape.
pub fn qwen2_config(
    vocab: usize,
    hidden: usize,
    inter: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
) -> Result<ModelConfig> {
    ModelConfig::from_json(json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
        "torch_dtype": "float32"
    }))
}

/// Writes a random model with `words` as its vocabulary into `dir` (HF layout, with a
/// pass-through chat template and eos/pad ids 1/0).
pub fn write_model_dir(
    dir: &Path,
    cfg: ModelConfig,
    words: &[String],
    init_std: f64,
    seed: u64,
) -> Result<()> {
    let model = Model::random_with_std(cfg, DType::F32, &Device::Cpu, seed, init_std)?;
    model.save(dir, Some(DType::F32), None)?;
    let write = |name: &str, v: serde_json::Value| {
        std::fs::write(
            dir.join(name),
            serde_json::to_string_pretty(&v).expect("json"),
        )
        .with_context(|| format!("writing {name}"))
    };
    write("tokenizer.json", word_level_tokenizer_json(words))?;
    write(
        "tokenizer_config.json",
        json!({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}", "eos_token": EOS, "pad_token": PAD}),
    )?;
    write(
        "generation_config.json",
        json!({"eos_token_id": 1, "pad_token_id": 0}),
    )?;
    Ok(())
}

/// Writes the toy model and the one-example training file under `dir` and returns a config
/// that trains on it (small batch, short responses, lr 1e-2, no KL or entropy terms, no
/// progress bar, no plots); tests adjust it further.
pub fn write_toy_task(dir: &Path, seed: u64) -> Result<TrainConfig> {
    let words = toy_vocab();
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir)?;
    write_model_dir(
        &model_dir,
        qwen2_config(words.len(), 32, 64, 2, 4, 2)?,
        &words,
        0.02,
        seed,
    )?;
    let row = VerlRow {
        data_source: "toy".into(),
        prompt: vec![ChatTurn::user("what is the answer ?")],
        ability: "math".into(),
        ground_truth: "7".into(),
        reward_style: "rule".into(),
        index: 124,
        extra: Vec::new(),
    };
    let data = dir.join("toy.parquet");
    write_verl_parquet(&data, &[row])?;
    let text = format!(
        r#"
[model]
path = "{model}"
dtype = "f32"
[data]
train_files = ["{data}"]
train_batch_size = 4
max_prompt_length = 16
[rollout]
n = 8
temperature = 1.0
max_response_length = 2
[algorithm]
use_kl_loss = false
entropy_coef = 0.0
[optim]
lr = 1e-2
weight_decay = 0.0
[trainer]
total_steps = 40
mini_batch_size = 4
micro_batch_tokens = 64
seed = {seed}
save_every = 0
output_dir = "{out}"
plots = false
progress_bar = false
[validation]
every = 0
"#,
        model = model_dir.display(),
        data = data.display(),
        out = dir.join("run").display(),
    );
    TrainConfig::from_toml_str(&text)
}
