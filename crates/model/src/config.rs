//! `config.json` of the decoder families we run: Qwen2 (Qwen2.5, Qwen2.5-Math, R1-Distill-Qwen)
//! and Llama (Llama-3.x, including `rope_scaling` of type "llama3").
//!
//! The parsed config keeps the original JSON so that a saved checkpoint carries the same
//! `config.json` (with `torch_dtype` updated) and transformers reads it back unchanged.
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Which decoder family a config describes; the families differ only in which projections
/// carry biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2: q/k/v projections always have biases, o_proj and the MLP never.
    Qwen2,
    /// Llama: `attention_bias` puts biases on q/k/v/o, `mlp_bias` on gate/up/down.
    Llama,
}

/// Frequency rescaling of the rotary embedding ("rope_scaling" in config.json).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Llama 3.1/3.2 "llama3" scaling: long wavelengths divided by `factor`, short ones kept,
    /// a smooth blend in between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama with `attention_bias`).
    pub o_bias: bool,
    /// Biases on gate/up/down (Llama with `mlp_bias`).
    pub mlp_bias: bool,
    /// `torch_dtype` as written in the file ("bfloat16", "float32", ...), if any.
    pub torch_dtype: Option<String>,
    /// The file as read, to be written back on save.
    pub raw: Value,
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).filter(|x| !x.is_null())
}

fn req_usize(v: &Value, name: &str) -> Result<usize> {
    let x = field(v, name).ok_or_else(|| anyhow!("missing field `{name}`"))?;
    x.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| anyhow!("field `{name}` must be a non-negative integer, got {x}"))
}

fn opt_f64(v: &Value, name: &str, default: f64) -> Result<f64> {
    match field(v, name) {
        None => Ok(default),
        Some(x) => x
            .as_f64()
            .ok_or_else(|| anyhow!("field `{name}` must be a number, got {x}")),
    }
}

fn opt_bool(v: &Value, name: &str, default: bool) -> Result<bool> {
    match field(v, name) {
        None => Ok(default),
        Some(x) => x
            .as_bool()
            .ok_or_else(|| anyhow!("field `{name}` must be true/false, got {x}")),
    }
}

impl ModelConfig {
    /// Read and validate `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading model config {}", path.display()))?;
        let raw: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing model config {} as JSON", path.display()))?;
        Self::from_json(raw).with_context(|| format!("in model config {}", path.display()))
    }

    pub fn from_json(raw: Value) -> Result<Self> {
        if !raw.is_object() {
            bail!("model config must be a JSON object");
        }
        let arch = detect_arch(&raw)?;
        let hidden_size = req_usize(&raw, "hidden_size")?;
        let num_attention_heads = req_usize(&raw, "num_attention_heads")?;
        let num_key_value_heads = match field(&raw, "num_key_value_heads") {
            Some(_) => req_usize(&raw, "num_key_value_heads")?,
            None => num_attention_heads,
        };
        let head_dim = match field(&raw, "head_dim") {
            Some(_) => req_usize(&raw, "head_dim")?,
            None => {
                if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
                    bail!("hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}");
                }
                hidden_size / num_attention_heads
            }
        };
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            bail!("num_attention_heads {num_attention_heads} is not a multiple of num_key_value_heads {num_key_value_heads}");
        }
        if head_dim % 2 != 0 {
            bail!("head_dim {head_dim} must be even for rotary embeddings");
        }
        let (qkv_bias, o_bias, mlp_bias) = match arch {
            Arch::Qwen2 => {
                if opt_bool(&raw, "use_sliding_window", false)? {
                    bail!("use_sliding_window=true is not supported (full attention only)");
                }
                (true, false, false)
            }
            Arch::Llama => {
                let ab = opt_bool(&raw, "attention_bias", false)?;
                (ab, ab, opt_bool(&raw, "mlp_bias", false)?)
            }
        };
        if let Some(act) = field(&raw, "hidden_act") {
            if act.as_str() != Some("silu") {
                bail!("field `hidden_act` = {act} is not supported (only \"silu\")");
            }
        }
        // transformers >= 5 writes `rope_parameters` (with rope_theta inside) instead of
        // top-level `rope_theta` + `rope_scaling`; accept both.
        let rope_params = field(&raw, "rope_parameters");
        let rope_scaling = parse_rope_scaling(field(&raw, "rope_scaling").or(rope_params))?;
        let rope_theta = match (
            field(&raw, "rope_theta"),
            rope_params.and_then(|p| field(p, "rope_theta")),
        ) {
            (Some(_), _) => opt_f64(&raw, "rope_theta", 10000.0)?,
            (None, Some(_)) => opt_f64(rope_params.unwrap(), "rope_theta", 10000.0)
                .context("in field `rope_parameters`")?,
            (None, None) => 10000.0,
        };
        let torch_dtype = field(&raw, "torch_dtype")
            .or_else(|| field(&raw, "dtype"))
            .and_then(|d| d.as_str())
            .map(str::to_string);
        Ok(Self {
            arch,
            vocab_size: req_usize(&raw, "vocab_size")?,
            hidden_size,
            intermediate_size: req_usize(&raw, "intermediate_size")?,
            num_hidden_layers: req_usize(&raw, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: match field(&raw, "max_position_embeddings") {
                Some(_) => req_usize(&raw, "max_position_embeddings")?,
                None => 32768,
            },
            rope_theta,
            rope_scaling,
            rms_norm_eps: opt_f64(&raw, "rms_norm_eps", 1e-6)?,
            tie_word_embeddings: opt_bool(&raw, "tie_word_embeddings", false)?,
            qkv_bias,
            o_bias,
            mlp_bias,
            torch_dtype,
            raw,
        })
    }

    /// Query heads that share one key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Number of scalar parameters (tied embeddings counted once).
    pub fn num_parameters(&self) -> usize {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let q = self.num_attention_heads * d;
        let kv = self.num_key_value_heads * d;
        let mut layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
        if self.qkv_bias {
            layer += q + 2 * kv;
        }
        if self.o_bias {
            layer += h;
        }
        if self.mlp_bias {
            layer += 2 * i + h;
        }
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + head + h + self.num_hidden_layers * layer
    }
}

fn detect_arch(raw: &Value) -> Result<Arch> {
    let archs: Vec<&str> = field(raw, "architectures")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let model_type = field(raw, "model_type")
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let by_name = |a: &str| match a {
        "Qwen2ForCausalLM" => Some(Arch::Qwen2),
        "LlamaForCausalLM" => Some(Arch::Llama),
        _ => None,
    };
    if let Some(arch) = archs.iter().find_map(|a| by_name(a)) {
        return Ok(arch);
    }
    match model_type {
        "qwen2" => Ok(Arch::Qwen2),
        "llama" => Ok(Arch::Llama),
        _ => bail!(
            "unsupported architecture (architectures={archs:?}, model_type={model_type:?}); \
             supported: Qwen2ForCausalLM (qwen2), LlamaForCausalLM (llama)"
        ),
    }
}

fn parse_rope_scaling(v: Option<&Value>) -> Result<Option<RopeScaling>> {
    let Some(v) = v else { return Ok(None) };
    let kind = field(v, "rope_type")
        .or_else(|| field(v, "type"))
        .and_then(|t| t.as_str())
        .ok_or_else(|| {
            anyhow!("field `rope_scaling`/`rope_parameters` has no `rope_type`/`type`")
        })?;
    let num = |name: &str| -> Result<f64> {
        field(v, name)
            .and_then(|x| x.as_f64())
            .ok_or_else(|| anyhow!("field `rope_scaling.{name}` (or `rope_parameters.{name}`) is missing or not a number"))
    };
    match kind {
        "default" => Ok(None),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        })),
        other => bail!("field `rope_scaling`/`rope_parameters` type {other:?} is not supported (only \"llama3\" or \"default\")"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qwen() -> Value {
        json!({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 100, "hidden_size": 32,
               "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
               "tie_word_embeddings": true, "torch_dtype": "bfloat16"})
    }

    #[test]
    fn qwen2_defaults() {
        let c = ModelConfig::from_json(qwen()).unwrap();
        assert_eq!(c.arch, Arch::Qwen2);
        assert_eq!(c.head_dim, 8);
        assert_eq!(c.group_size(), 2);
        assert!(c.qkv_bias && !c.o_bias && !c.mlp_bias && c.tie_word_embeddings);
        assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    }

    #[test]
    fn llama3_rope_scaling_and_bias_flags() {
        let mut v = qwen();
        v["architectures"] = json!(["LlamaForCausalLM"]);
        v["attention_bias"] = json!(true);
        v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let c = ModelConfig::from_json(v).unwrap();
        assert_eq!(c.arch, Arch::Llama);
        assert!(c.qkv_bias && c.o_bias && !c.mlp_bias);
        assert!(
            matches!(c.rope_scaling, Some(RopeScaling::Llama3 { factor, .. }) if factor == 32.0)
        );
    }

    #[test]
    fn transformers5_rope_parameters() {
        let mut v = qwen();
        v.as_object_mut().unwrap().remove("rope_theta");
        v["rope_parameters"] = json!({"rope_theta": 500000.0, "rope_type": "default"});
        let c = ModelConfig::from_json(v).unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert!(c.rope_scaling.is_none());
    }

    #[test]
    fn unknown_architecture_is_a_clear_error() {
        let mut v = qwen();
        v["architectures"] = json!(["MistralForCausalLM"]);
        v["model_type"] = json!("mistral");
        let e = format!("{:#}", ModelConfig::from_json(v).unwrap_err());
        assert!(
            e.contains("MistralForCausalLM") && e.contains("supported"),
            "{e}"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut v = qwen();
        v["hidden_size"] = json!("big");
        let e = format!("{:#}", ModelConfig::from_json(v).unwrap_err());
        assert!(e.contains("hidden_size"), "{e}");
        let mut v = qwen();
        v["num_key_value_heads"] = json!(3);
        let e = format!("{:#}", ModelConfig::from_json(v).unwrap_err());
        assert!(e.contains("num_key_value_heads"), "{e}");
        let mut v = qwen();
        v["rope_scaling"] = json!({"type": "yarn", "factor": 4.0});
        let e = format!("{:#}", ModelConfig::from_json(v).unwrap_err());
        assert!(e.contains("yarn"), "{e}");
    }

    #[test]
    fn parameter_count_of_qwen25_05b_shape() {
        let v = json!({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
            "num_key_value_heads": 2, "tie_word_embeddings": true});
        let c = ModelConfig::from_json(v).unwrap();
        // Qwen2.5-0.5B has 494,032,768 parameters.
        assert_eq!(c.num_parameters(), 494_032_768);
    }
}
