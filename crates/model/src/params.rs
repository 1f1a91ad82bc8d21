//! Trainable parameters: one candle `Var` per HF tensor name, plus typed views of them
//! (`Weights`) that the forward pass reads, either attached to autograd or detached.
use crate::config::ModelConfig;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// What a parameter holds, which decides its random initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Matrix,
    Bias,
    Norm,
}

/// Name, shape and kind of one parameter, in HF naming.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
}

/// Every parameter a config implies, in a fixed order (embeddings, layers, final norm, head).
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (h, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut out = Vec::new();
    let mut push =
        |name: String, shape: Vec<usize>, kind| out.push(ParamSpec { name, shape, kind });
    push(
        "model.embed_tokens.weight".into(),
        vec![cfg.vocab_size, h],
        ParamKind::Matrix,
    );
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        push(
            format!("{p}.input_layernorm.weight"),
            vec![h],
            ParamKind::Norm,
        );
        for (proj, rows, cols, bias) in [
            ("q_proj", q, h, cfg.qkv_bias),
            ("k_proj", kv, h, cfg.qkv_bias),
            ("v_proj", kv, h, cfg.qkv_bias),
            ("o_proj", h, q, cfg.o_bias),
        ] {
            push(
                format!("{p}.self_attn.{proj}.weight"),
                vec![rows, cols],
                ParamKind::Matrix,
            );
            if bias {
                push(
                    format!("{p}.self_attn.{proj}.bias"),
                    vec![rows],
                    ParamKind::Bias,
                );
            }
        }
        push(
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            ParamKind::Norm,
        );
        for (proj, rows, cols) in [("gate_proj", i, h), ("up_proj", i, h), ("down_proj", h, i)] {
            push(
                format!("{p}.mlp.{proj}.weight"),
                vec![rows, cols],
                ParamKind::Matrix,
            );
            if cfg.mlp_bias {
                push(format!("{p}.mlp.{proj}.bias"), vec![rows], ParamKind::Bias);
            }
        }
    }
    push("model.norm.weight".into(), vec![h], ParamKind::Norm);
    if !cfg.tie_word_embeddings {
        push(
            "lm_head.weight".into(),
            vec![cfg.vocab_size, h],
            ParamKind::Matrix,
        );
    }
    out
}

/// A linear map `y = x W^T + b` as stored by HF (W: [out, in]).
#[derive(Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// A LoRA adapter on this projection (then `weight` is frozen).
    pub lora: Option<crate::lora::LoraLinear>,
    /// `weight` packed once for the bf16 products of many decoding steps (see
    /// [`Weights::with_bf16_projections`]).
    pub packed: Option<oneshot_kernels::Bf16Weight>,
}

#[derive(Clone)]
pub struct LayerWeights {
    pub input_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub post_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// The tensors one forward pass reads. `lm_head` is the embedding matrix when tied.
#[derive(Clone)]
pub struct Weights {
    pub embed: Tensor,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
    pub lm_head: Tensor,
    /// `lm_head` packed once for the bf16 products of many decoding steps.
    pub lm_head_packed: Option<oneshot_kernels::Bf16Weight>,
}

impl Linear {
    fn with_bf16_weight(&self) -> Result<Self> {
        Ok(Self {
            weight: oneshot_kernels::round_to_bf16(&self.weight)?,
            bias: self.bias.clone(),
            lora: self.lora.clone(),
            packed: Some(oneshot_kernels::Bf16Weight::packed_on_first_use()),
        })
    }
}

impl Weights {
    /// The same weights with every projection (attention, MLP, output head) rounded to bf16;
    /// embeddings, norms and biases unchanged. Used for decoding under
    /// `MatmulPrecision::Bf16`: the products round their operands to bf16 anyway, so one copy
    /// made per generation replaces a rounding pass over all weights at every step, and the
    /// steps with enough rows for the packed kernels read a copy packed once in their layout.
    pub fn with_bf16_projections(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerWeights {
                    input_norm: l.input_norm.clone(),
                    q: l.q.with_bf16_weight()?,
                    k: l.k.with_bf16_weight()?,
                    v: l.v.with_bf16_weight()?,
                    o: l.o.with_bf16_weight()?,
                    post_norm: l.post_norm.clone(),
                    gate: l.gate.with_bf16_weight()?,
                    up: l.up.with_bf16_weight()?,
                    down: l.down.with_bf16_weight()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: self.embed.clone(),
            layers,
            norm: self.norm.clone(),
            lm_head: oneshot_kernels::round_to_bf16(&self.lm_head)?,
            lm_head_packed: Some(oneshot_kernels::Bf16Weight::packed_on_first_use()),
        })
    }
}

/// The trainable parameters, in `param_specs` order. A clone shares the variables' storage.
#[derive(Clone)]
pub struct Params {
    specs: Vec<ParamSpec>,
    vars: Vec<Var>,
    index: HashMap<String, usize>,
}

impl Params {
    /// Wrap tensors (already of the right shape and dtype) as variables. `tensors` must hold
    /// every spec'd name; callers check shapes first and give file-specific errors.
    pub(crate) fn from_tensors(
        cfg: &ModelConfig,
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let specs = param_specs(cfg);
        let mut vars = Vec::with_capacity(specs.len());
        for s in &specs {
            let Some(t) = tensors.remove(&s.name) else {
                bail!("missing tensor `{}`", s.name)
            };
            if t.dims() != s.shape.as_slice() {
                bail!(
                    "tensor `{}` has shape {:?}, expected {:?}",
                    s.name,
                    t.dims(),
                    s.shape
                );
            }
            vars.push(Var::from_tensor(&t)?);
        }
        Ok(Self::assemble(specs, vars))
    }

    fn assemble(specs: Vec<ParamSpec>, vars: Vec<Var>) -> Self {
        let index = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Self { specs, vars, index }
    }

    /// Random parameters: matrices and biases ~ N(0, std^2), norm weights 1. Deterministic in
    /// `seed` (each tensor draws from its own stream, so it does not depend on the others).
    pub(crate) fn random(
        cfg: &ModelConfig,
        std: f64,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        use rayon::prelude::*;
        let specs = param_specs(cfg);
        let host: Vec<Vec<f32>> = specs
            .par_iter()
            .enumerate()
            .map(|(i, s)| {
                let n: usize = s.shape.iter().product();
                match s.kind {
                    ParamKind::Norm => vec![1.0f32; n],
                    _ => normal_vec(
                        n,
                        std as f32,
                        seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                    ),
                }
            })
            .collect();
        let mut vars = Vec::with_capacity(specs.len());
        for (s, data) in specs.iter().zip(host) {
            let t = Tensor::from_vec(data, s.shape.as_slice(), device)?.to_dtype(dtype)?;
            vars.push(Var::from_tensor(&t)?);
        }
        Ok(Self::assemble(specs, vars))
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// (HF name, variable) pairs; the variables share storage with the model.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.specs
            .iter()
            .map(|s| s.name.clone())
            .zip(self.vars.iter().cloned())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.index.get(name).map(|&i| &self.vars[i])
    }

    /// Views of the parameters for a forward pass. `detached`: no autograd graph is recorded
    /// (sampling, reference log-probs); otherwise gradients flow to the variables.
    pub fn weights(&self, detached: bool) -> Weights {
        let t = |name: &str| -> Tensor {
            let v = self
                .get(name)
                .unwrap_or_else(|| panic!("parameter {name} not present"));
            if detached {
                v.as_tensor().detach()
            } else {
                v.as_tensor().clone()
            }
        };
        let opt =
            |name: String| -> Option<Tensor> { self.index.contains_key(&name).then(|| t(&name)) };
        let lin = |name: String| Linear {
            weight: t(&format!("{name}.weight")),
            bias: opt(format!("{name}.bias")),
            lora: None,
            packed: None,
        };
        let n_layers = self
            .specs
            .iter()
            .filter(|s| s.name.ends_with(".input_layernorm.weight"))
            .count();
        let layers = (0..n_layers)
            .map(|l| {
                let p = format!("model.layers.{l}");
                LayerWeights {
                    input_norm: t(&format!("{p}.input_layernorm.weight")),
                    q: lin(format!("{p}.self_attn.q_proj")),
                    k: lin(format!("{p}.self_attn.k_proj")),
                    v: lin(format!("{p}.self_attn.v_proj")),
                    o: lin(format!("{p}.self_attn.o_proj")),
                    post_norm: t(&format!("{p}.post_attention_layernorm.weight")),
                    gate: lin(format!("{p}.mlp.gate_proj")),
                    up: lin(format!("{p}.mlp.up_proj")),
                    down: lin(format!("{p}.mlp.down_proj")),
                }
            })
            .collect();
        let embed = t("model.embed_tokens.weight");
        let lm_head = opt("lm_head.weight".to_string()).unwrap_or_else(|| embed.clone());
        Weights {
            embed,
            layers,
            norm: t("model.norm.weight"),
            lm_head,
            lm_head_packed: None,
        }
    }
}

/// n samples of N(0, std^2) from a seeded stream (Box-Muller).
fn normal_vec(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f32 = rng.gen::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.gen::<f32>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let a = 2.0 * std::f32::consts::PI * u2;
        out.push(r * a.cos());
        out.push(r * a.sin());
    }
    out.truncate(n);
    out
}
