//! LoRA adapters on the decoder's projections: `y = x W^T + s * (dropout(x) A^T) B^T` with the
//! base weight W frozen and only A `[r, in]` and B `[out, r]` trainable; `s` is `alpha / r`, or
//! `alpha / sqrt(r)` with rsLoRA.
//!
//! - [`LoraConfig`]: rank, alpha, dropout, target modules, rsLoRA.
//! - [`Model::add_lora`] (PEFT's initialisation: A Kaiming-uniform, B zero),
//!   [`Model::load_lora`] / [`Model::save_lora`] (PEFT's file layout, [`peft`]),
//!   [`Model::without_adapters`] (the base, sharing its storage: the KL reference),
//!   [`Model::merged`] (one model with `W + s B A`, for export and decoding copies).
//! - With adapters, [`Model::vars`] are the adapters only, and every adapted projection runs
//!   through [`frozen::adapted_sum`], whose backward never forms the frozen weight's gradient.
//! - Dropout ([`dropout`]) runs only in the update's forward ([`Model::logprobs_with_grad`]);
//!   its masks are a function of a seed and a call counter, so runs and resumes repeat.
pub mod dropout;
pub mod frozen;
pub mod peft;

use crate::layers::{project, MatmulPrecision};
use crate::model::Model;
use crate::params::{Linear, Weights};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A projection LoRA can adapt, by its HF module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::QProj,
        Target::KProj,
        Target::VProj,
        Target::OProj,
        Target::GateProj,
        Target::UpProj,
        Target::DownProj,
    ];

    /// The module name (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Target::QProj => "q_proj",
            Target::KProj => "k_proj",
            Target::VProj => "v_proj",
            Target::OProj => "o_proj",
            Target::GateProj => "gate_proj",
            Target::UpProj => "up_proj",
            Target::DownProj => "down_proj",
        }
    }

    /// The submodule path inside a decoder layer (`self_attn.q_proj`, `mlp.up_proj`).
    pub fn path(self) -> String {
        let block = match self {
            Target::QProj | Target::KProj | Target::VProj | Target::OProj => "self_attn",
            _ => "mlp",
        };
        format!("{block}.{}", self.name())
    }

    fn index(self) -> usize {
        Target::ALL.iter().position(|&t| t == self).expect("listed")
    }

    /// Parses module names; `all-linear` (PEFT's spelling, also `all_linear`) is every
    /// projection of the decoder layers (the output head is never adapted). A dotted path
    /// (`model.layers.0.mlp.up_proj`, as PEFT saves an expanded `all-linear`) counts by its
    /// last part, as PEFT matches names by suffix.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        for n in names {
            let n = n.as_ref();
            match n.rsplit('.').next().unwrap_or(n) {
                "all-linear" | "all_linear" => out.extend(Target::ALL),
                other => match Target::ALL.iter().find(|t| t.name() == other) {
                    Some(&t) => out.push(t),
                    None => bail!(
                        "unknown LoRA target module `{other}` (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear)"
                    ),
                },
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            bail!("no LoRA target modules given");
        }
        Ok(out)
    }
}

/// What adapters a model carries.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    /// Dropout probability on the adapters' input, in the update's forward only.
    pub dropout: f64,
    pub targets: Vec<Target>,
    /// rsLoRA: scale `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
}

impl LoraConfig {
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            bail!("LoRA rank r must be at least 1");
        }
        if !self.alpha.is_finite() {
            bail!("LoRA alpha must be finite, got {}", self.alpha);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("LoRA dropout must be in [0, 1), got {}", self.dropout);
        }
        if self.targets.is_empty() {
            bail!("LoRA needs at least one target module");
        }
        Ok(())
    }

    /// The factor on `B A`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }
}

/// One adapted projection.
#[derive(Clone)]
pub struct Adapter {
    /// `[r, in]`
    pub a: Var,
    /// `[out, r]`
    pub b: Var,
}

/// The adapters of a model: per layer, one slot per [`Target`] (in `Target::ALL` order).
pub struct Lora {
    pub config: LoraConfig,
    layers: Vec<[Option<Adapter>; 7]>,
    dropout_seed: u64,
    /// Update forwards done so far: each draws fresh dropout masks from (seed, count).
    dropout_calls: AtomicU64,
    /// Decoding merges the adapters once per call (true) or applies them per token.
    merge_for_decode: bool,
}

/// The adapter of one projection as the forward pass reads it.
#[derive(Clone)]
pub struct LoraLinear {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    /// (probability, seed of this projection's masks) in the update's forward.
    pub dropout: Option<(f64, u64)>,
}

/// PEFT's tensor name of an adapter matrix (`which` is `A` or `B`).
pub fn peft_name(layer: usize, target: Target, which: char) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{which}.weight",
        target.path()
    )
}

/// The (in, out) features of a projection.
fn features(cfg: &crate::ModelConfig, t: Target) -> (usize, usize) {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let (q, kv) = (
        cfg.num_attention_heads * cfg.head_dim,
        cfg.num_key_value_heads * cfg.head_dim,
    );
    match t {
        Target::QProj => (h, q),
        Target::KProj | Target::VProj => (h, kv),
        Target::OProj => (q, h),
        Target::GateProj | Target::UpProj => (h, i),
        Target::DownProj => (i, h),
    }
}

fn linear_mut(l: &mut crate::params::LayerWeights, t: Target) -> &mut Linear {
    match t {
        Target::QProj => &mut l.q,
        Target::KProj => &mut l.k,
        Target::VProj => &mut l.v,
        Target::OProj => &mut l.o,
        Target::GateProj => &mut l.gate,
        Target::UpProj => &mut l.up,
        Target::DownProj => &mut l.down,
    }
}

/// 64-bit mix (splitmix64's finaliser), for deriving independent seeds.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Lora {
    /// Fresh adapters as PEFT initialises them: A ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform
    /// with a = sqrt(5)), B = 0, so the adapted model starts as the base. f32, deterministic in
    /// `seed` (each matrix from its own stream).
    pub fn init(
        model_cfg: &crate::ModelConfig,
        config: LoraConfig,
        seed: u64,
        device: &candle_core::Device,
    ) -> Result<Self> {
        config.validate()?;
        let r = config.r;
        let mut layers = Vec::with_capacity(model_cfg.num_hidden_layers);
        for l in 0..model_cfg.num_hidden_layers {
            let mut slots: [Option<Adapter>; 7] = Default::default();
            for &t in &config.targets {
                let (fan_in, out) = features(model_cfg, t);
                let bound = 1.0 / (fan_in as f32).sqrt();
                let mut rng =
                    ChaCha8Rng::seed_from_u64(mix(seed ^ mix((l * 7 + t.index()) as u64)));
                let a: Vec<f32> = (0..r * fan_in)
                    .map(|_| rng.gen_range(-bound..bound))
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (r, fan_in), device)?)?;
                let b = Var::from_tensor(&Tensor::zeros((out, r), DType::F32, device)?)?;
                slots[t.index()] = Some(Adapter { a, b });
            }
            layers.push(slots);
        }
        Ok(Self::assemble(config, layers))
    }

    fn assemble(config: LoraConfig, layers: Vec<[Option<Adapter>; 7]>) -> Self {
        Self {
            config,
            layers,
            dropout_seed: 0,
            dropout_calls: AtomicU64::new(0),
            merge_for_decode: true,
        }
    }

    /// (PEFT name, variable) of every adapter matrix, layer by layer, A before B.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (l, slots) in self.layers.iter().enumerate() {
            for t in Target::ALL {
                if let Some(ad) = &slots[t.index()] {
                    out.push((peft_name(l, t, 'A'), ad.a.clone()));
                    out.push((peft_name(l, t, 'B'), ad.b.clone()));
                }
            }
        }
        out
    }

    pub fn adapter(&self, layer: usize, t: Target) -> Option<&Adapter> {
        self.layers.get(layer)?[t.index()].as_ref()
    }

    /// Puts the adapters into a forward pass's weights, attached to autograd or not; with
    /// `dropout_key`, each projection's input gets its own dropout mask stream.
    pub(crate) fn attach(&self, w: &mut Weights, detached: bool, dropout_key: Option<u64>) {
        let scale = self.config.scale();
        for (l, (slots, lw)) in self.layers.iter().zip(w.layers.iter_mut()).enumerate() {
            for t in Target::ALL {
                let Some(ad) = &slots[t.index()] else {
                    continue;
                };
                let view = |v: &Var| match detached {
                    true => v.as_tensor().detach(),
                    false => v.as_tensor().clone(),
                };
                let dropout = dropout_key.filter(|_| self.config.dropout > 0.0).map(|k| {
                    (
                        self.config.dropout,
                        mix(k ^ mix((l * 7 + t.index()) as u64)),
                    )
                });
                linear_mut(lw, t).lora = Some(LoraLinear {
                    a: view(&ad.a),
                    b: view(&ad.b),
                    scale,
                    dropout,
                });
            }
        }
    }

    /// Seeds the dropout masks and sets how many update forwards already ran (a resumed run
    /// passes the count its checkpoint recorded).
    pub fn set_dropout_state(&mut self, seed: u64, calls: u64) {
        self.dropout_seed = seed;
        self.dropout_calls.store(calls, Ordering::SeqCst);
    }

    /// Decode with the adapters merged once per call (the default, measured faster) or
    /// applied at every token (no merged copy of the projections in memory).
    pub fn set_merge_for_decode(&mut self, merge: bool) {
        self.merge_for_decode = merge;
    }

    /// Update forwards done so far (saved with checkpoints).
    pub fn dropout_calls(&self) -> u64 {
        self.dropout_calls.load(Ordering::SeqCst)
    }

    /// The mask key of the next update forward (advances the counter).
    pub(crate) fn next_dropout_key(&self) -> u64 {
        let call = self.dropout_calls.fetch_add(1, Ordering::SeqCst);
        mix(self.dropout_seed ^ mix(call.wrapping_add(0x5EED)))
    }

    /// `W + s B A` for one projection, in W's dtype (computed in f32).
    fn merged_weight(&self, w: &Tensor, layer: usize, t: Target) -> Result<Tensor> {
        let Some(ad) = self.adapter(layer, t) else {
            return Ok(w.clone());
        };
        let delta =
            ad.b.as_tensor()
                .detach()
                .matmul(&ad.a.as_tensor().detach())?;
        let sum = (w.to_dtype(DType::F32)? + (delta * self.config.scale())?)?;
        Ok(sum.to_dtype(w.dtype())?)
    }
}

/// `x W^T + s (dropout(x) A^T) B^T` for one projection; the base product never computes a
/// gradient for W.
pub(crate) fn adapted_product(
    x: &Tensor,
    weight: &Tensor,
    lora: &LoraLinear,
    matmul: MatmulPrecision,
) -> Result<Tensor> {
    let x_in = match lora.dropout {
        Some((p, seed)) => dropout::apply(x, p, seed)?,
        None => x.clone(),
    };
    let low = project(&x_in.to_dtype(lora.a.dtype())?, &lora.a, matmul)?;
    frozen::adapted_sum(x, weight, &low, &lora.b, lora.scale, matmul)
}

impl Model {
    /// Adds fresh adapters (PEFT's initialisation, seeded); replaces any present.
    pub fn add_lora(&mut self, config: LoraConfig, seed: u64) -> Result<()> {
        let lora = Lora::init(&self.config, config, seed, self.device())?;
        self.lora = Some(lora);
        Ok(())
    }

    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    pub fn lora_mut(&mut self) -> Option<&mut Lora> {
        self.lora.as_mut()
    }

    /// The base model without adapters, sharing this model's weight storage (no copy): the
    /// KL reference of a LoRA run.
    pub fn without_adapters(&self) -> Model {
        self.shallow_clone_without_lora()
    }

    /// One model whose projections are `W + s B A` (own storage, no adapters): what the
    /// adapted model computes, for export and for a decoding copy.
    pub fn merged(&self) -> Result<Model> {
        let tensors = self.merged_tensors()?.into_iter().collect();
        Ok(Model::from_tensors(
            self.config.clone(),
            tensors,
            self.dtype(),
            self.device(),
            &|_| "a merged model".into(),
        )?
        .with_fused_attention(self.fused_attention_enabled())
        .with_matmul_precision(self.matmul_precision()))
    }

    /// Detached weights for decoding: with adapters, each adapted projection merged once
    /// (`W + s B A`) instead of applying the adapters at every token, which measured several
    /// times faster per decoding step (docs/LORA.md); without adapters, [`Model::weights`].
    pub fn decode_weights(&self) -> Result<Weights> {
        let Some(lora) = self.lora.as_ref().filter(|l| l.merge_for_decode) else {
            return Ok(self.weights(true));
        };
        let mut w = self.shallow_clone_without_lora().weights(true);
        for (l, lw) in w.layers.iter_mut().enumerate() {
            for t in Target::ALL {
                let lin = linear_mut(lw, t);
                lin.weight = lora.merged_weight(&lin.weight, l, t)?;
            }
        }
        Ok(w)
    }

    /// (HF name, tensor) of every base parameter with the adapters merged in, detached.
    pub(crate) fn merged_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (name, v) in self.base_vars() {
            let t = v.as_tensor().detach();
            let merged = match (&self.lora, parse_target(&name)) {
                (Some(lora), Some((layer, target))) => lora.merged_weight(&t, layer, target)?,
                _ => t,
            };
            out.push((name, merged));
        }
        Ok(out)
    }
}

/// (layer, target) of an HF weight name `model.layers.N.<block>.<proj>.weight`.
fn parse_target(name: &str) -> Option<(usize, Target)> {
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let path = rest.strip_suffix(".weight")?;
    let t = Target::ALL.into_iter().find(|t| t.path() == path)?;
    Some((layer.parse().ok()?, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_reject_unknown_names() {
        assert_eq!(Target::parse_list(&["all-linear"]).unwrap().len(), 7);
        assert_eq!(
            Target::parse_list(&["v_proj", "model.layers.1.self_attn.q_proj", "q_proj"]).unwrap(),
            vec![Target::QProj, Target::VProj]
        );
        let err = Target::parse_list(&["lm_head"]).unwrap_err().to_string();
        assert!(err.contains("lm_head"), "{err}");
    }

    #[test]
    fn scale_follows_rslora() {
        let mut c = LoraConfig {
            r: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: vec![Target::QProj],
            use_rslora: false,
        };
        assert_eq!(c.scale(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scale(), 8.0);
    }

    #[test]
    fn weight_names_map_to_targets() {
        assert_eq!(
            parse_target("model.layers.12.mlp.down_proj.weight"),
            Some((12, Target::DownProj))
        );
        assert_eq!(parse_target("model.layers.0.self_attn.q_proj.bias"), None);
        assert_eq!(parse_target("lm_head.weight"), None);
    }
}
