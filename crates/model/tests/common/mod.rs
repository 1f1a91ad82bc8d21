//! Shared helpers for the model tests: fixture loading and tensor comparisons.
#![allow(dead_code)]
use candle_core::{DType, Device, Tensor};
use oneshot_model::{Batch, Model, ModelConfig};
use std::collections::HashMap;
use std::path::PathBuf;

pub const FIXTURES: [&str; 4] = [
    "qwen2_tied_gqa",
    "qwen2_untied_mha",
    "llama3_ropescaled_gqa",
    "llama_bias_tied",
];

/// The crate's directory at run time when the runner says where it is (cargo does; so does
/// scripts/gpu_check.sh, which runs the test binary on another machine), else where it was built.
pub fn fixture_dir(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/fixtures")
        .join(name)
}

pub struct Fixture {
    pub model: Model,
    pub expected: HashMap<String, Tensor>,
    pub response_start: usize,
    pub temperature: f64,
    pub entropy_weight: f64,
}

pub fn load_fixture(name: &str) -> Fixture {
    let dir = fixture_dir(name);
    // The model on the device named by ONESHOT_TEST_DEVICE; the expected values stay on the host.
    let model = Model::from_dir(&dir, DType::F32, &oneshot_test_device::device())
        .unwrap_or_else(|e| panic!("loading fixture {}: {e:#}", dir.display()));
    let expected = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu)
        .unwrap_or_else(|e| panic!("loading expected.safetensors of {name}: {e}"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    Fixture {
        model,
        expected,
        response_start: meta["response_start"].as_u64().unwrap() as usize,
        temperature: meta["temperature"].as_f64().unwrap(),
        entropy_weight: meta["entropy_weight"].as_f64().unwrap(),
    }
}

/// A `Batch` from i64 `[b, t]` id and mask tensors.
pub fn batch_from(ids: &Tensor, mask: &Tensor) -> Batch {
    let (b, t) = ids.dims2().unwrap();
    let ids: Vec<u32> = ids
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u32)
        .collect();
    let mask: Vec<u8> = mask
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u8)
        .collect();
    Batch::new(ids, mask, b, t).unwrap()
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// A small random model for behaviour tests (std large enough that logits are not flat).
pub fn tiny(arch: &str, tie: bool, kv_heads: usize, seed: u64) -> Model {
    let cfg = ModelConfig::from_json(serde_json::json!({
        "architectures": [arch], "vocab_size": 64, "hidden_size": 32, "intermediate_size": 40,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": kv_heads,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": tie,
        "attention_bias": true, "torch_dtype": "float32"}))
    .unwrap();
    Model::random_with_std(cfg, DType::F32, &Device::Cpu, seed, 0.2).unwrap()
}
