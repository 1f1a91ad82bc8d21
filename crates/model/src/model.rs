//! The decoder: construction (from an HF directory or random), and the forward pass over a
//! padded batch up to the final hidden states or the logits.
use crate::batch::{additive_mask, Batch};
use crate::config::ModelConfig;
use crate::kv_cache::KvCache;
use crate::layers::{decoder_layer, embed, Dims, LayerInputs, MatmulPrecision};
use crate::params::{param_specs, Params, Weights};
use crate::rope;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

pub struct Model {
    pub config: ModelConfig,
    params: Params,
    dtype: DType,
    device: Device,
    inv_freq: Vec<f32>,
    /// Attention through the fused `oneshot_kernels::causal_attention` (on by default) instead
    /// of the materialised matmul + additive mask + softmax.
    fused_attention: bool,
    /// How the projections multiply (f32 by default).
    matmul: MatmulPrecision,
    /// LoRA adapters: when present they are the trainable variables and `params` is frozen.
    pub(crate) lora: Option<crate::lora::Lora>,
}

/// Per-batch tensors every layer reads: rotary tables and the additive mask.
pub(crate) struct ForwardCtx {
    pub cos: Tensor,
    pub sin: Tensor,
    pub mask: Tensor,
    /// First visible key of each row, when the fused attention kernel applies (see
    /// [`fused_key_starts`]); `None` = use the mask.
    pub key_start: Option<Vec<usize>>,
}

impl ForwardCtx {
    pub fn inputs(&self) -> LayerInputs<'_> {
        LayerInputs {
            cos: &self.cos,
            sin: &self.sin,
            mask: &self.mask,
            key_start: self.key_start.as_deref(),
        }
    }
}

/// Per-row first key for the fused causal attention, which hides keys before `key_start` and
/// (causally) after each query. That equals the padding mask when each row's keys are
/// `0* 1+ 0*` and trailing zeros occur only when queries and keys coincide (`t_q == t_k`, a
/// full forward with right-padded responses: real queries never reach the trailing pads, and
/// pad queries' outputs are never read). Any other mask shape returns `None`.
fn fused_key_starts(key_mask: &[u8], b: usize, t_q: usize, t_k: usize) -> Option<Vec<usize>> {
    let mut starts = Vec::with_capacity(b);
    for row in key_mask.chunks(t_k.max(1)).take(b) {
        let start = row.iter().position(|&m| m != 0)?;
        let end = start + row[start..].iter().take_while(|&&m| m != 0).count();
        if row[end..].iter().any(|&m| m != 0) || (end < t_k && t_q != t_k) {
            return None;
        }
        starts.push(start);
    }
    Some(starts)
}

/// Parse an HF dtype name ("bfloat16", "float32", "f32", "bf16", ...).
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "float32" | "f32" | "fp32" => DType::F32,
        "bfloat16" | "bf16" => DType::BF16,
        "float16" | "f16" | "fp16" | "half" => DType::F16,
        other => bail!("unsupported dtype {other:?} (use f32, bf16 or f16)"),
    })
}

/// The HF name of a dtype, as written into `torch_dtype`.
pub fn hf_dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "unknown",
    }
}

impl Model {
    /// Load `config.json` and safetensors weights from an HF model directory, converting the
    /// weights to `dtype`. Missing or mis-shaped tensors are errors naming tensor and file.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let tensors = oneshot_hf::load_safetensors(dir, dtype, device)
            .with_context(|| format!("loading weights of {}", dir.display()))?;
        Self::from_tensors(config, tensors, dtype, device, &|name| {
            weights_file_for(dir, name)
        })
    }

    /// Build from named tensors (HF names). `describe(name)` says where a tensor came from,
    /// for error messages.
    pub fn from_tensors(
        config: ModelConfig,
        mut tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
        describe: &dyn Fn(&str) -> String,
    ) -> Result<Self> {
        for spec in param_specs(&config) {
            let Some(t) = tensors.get(&spec.name) else {
                bail!(
                    "tensor `{}` is missing from {}",
                    spec.name,
                    describe(&spec.name)
                );
            };
            if t.dims() != spec.shape.as_slice() {
                bail!(
                    "tensor `{}` in {} has shape {:?}, but config.json implies {:?}",
                    spec.name,
                    describe(&spec.name),
                    t.dims(),
                    spec.shape
                );
            }
            if t.dtype() != dtype {
                let conv = t.to_dtype(dtype)?;
                tensors.insert(spec.name.clone(), conv);
            }
        }
        let params = Params::from_tensors(&config, tensors)?;
        Ok(Self::assemble(config, params, dtype, device))
    }

    /// Random weights of the shape `config` describes (matrices ~ N(0, 0.02^2), as HF's
    /// `initializer_range`), deterministic in `seed`.
    pub fn random(config: ModelConfig, dtype: DType, device: &Device, seed: u64) -> Result<Self> {
        Self::random_with_std(config, dtype, device, seed, 0.02)
    }

    pub fn random_with_std(
        config: ModelConfig,
        dtype: DType,
        device: &Device,
        seed: u64,
        std: f64,
    ) -> Result<Self> {
        let params = Params::random(&config, std, seed, dtype, device)?;
        Ok(Self::assemble(config, params, dtype, device))
    }

    fn assemble(config: ModelConfig, params: Params, dtype: DType, device: &Device) -> Self {
        let inv_freq = rope::inv_freq(&config);
        Self {
            config,
            params,
            dtype,
            device: device.clone(),
            inv_freq,
            fused_attention: true,
            matmul: MatmulPrecision::F32,
            lora: None,
        }
    }

    /// The same model without adapters, its parameters sharing this one's storage.
    pub(crate) fn shallow_clone_without_lora(&self) -> Self {
        Self {
            config: self.config.clone(),
            params: self.params.clone(),
            dtype: self.dtype,
            device: self.device.clone(),
            inv_freq: self.inv_freq.clone(),
            fused_attention: self.fused_attention,
            matmul: self.matmul,
            lora: None,
        }
    }

    pub(crate) fn fused_attention_enabled(&self) -> bool {
        self.fused_attention
    }

    /// Choose the fused attention kernel (default) or the materialised reference path
    /// (matmul + additive mask + softmax; kept for comparisons and tests).
    pub fn with_fused_attention(mut self, fused: bool) -> Self {
        self.fused_attention = fused;
        self
    }

    /// Multiply the projections in f32 (default) or with bf16 operands and f32 accumulation
    /// (forward and backward; see [`MatmulPrecision::Bf16`]).
    pub fn with_matmul_precision(mut self, matmul: MatmulPrecision) -> Self {
        self.matmul = matmul;
        self
    }

    pub fn set_matmul_precision(&mut self, matmul: MatmulPrecision) {
        self.matmul = matmul;
    }

    pub fn matmul_precision(&self) -> MatmulPrecision {
        self.matmul
    }

    /// A frozen copy (own storage, no autograd link), e.g. the KL reference policy. With
    /// adapters it is the merged model (what this one computes), without adapters.
    pub fn frozen_copy(&self) -> Result<Self> {
        if self.lora.is_some() {
            return self.merged();
        }
        let tensors: HashMap<String, Tensor> = self
            .params
            .vars()
            .into_iter()
            .map(|(n, v)| Ok((n, v.as_tensor().copy()?.detach())))
            .collect::<Result<_>>()?;
        Ok(Self::from_tensors(
            self.config.clone(),
            tensors,
            self.dtype,
            &self.device,
            &|_| "a model copy".into(),
        )?
        .with_fused_attention(self.fused_attention)
        .with_matmul_precision(self.matmul))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trainable parameters as (name, variable); updating a variable updates the model.
    /// Without adapters: every parameter by HF name (with tied embeddings the embedding
    /// matrix appears once and serves as the output head). With adapters: the adapter
    /// matrices only, by PEFT name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        match &self.lora {
            Some(l) => l.vars(),
            None => self.params.vars(),
        }
    }

    /// The base parameters by HF name (frozen when adapters are present).
    pub fn base_vars(&self) -> Vec<(String, Var)> {
        self.params.vars()
    }

    /// A base parameter by HF name.
    pub fn var(&self, name: &str) -> Option<&Var> {
        self.params.get(name)
    }

    /// Parameter views: attached to autograd (`detached = false`) or not. With adapters the
    /// base is always detached and only the adapters attach.
    pub fn weights(&self, detached: bool) -> Weights {
        self.weights_with_dropout(detached, None)
    }

    /// [`Model::weights`] with the adapters' dropout masks keyed by `dropout_key`.
    pub(crate) fn weights_with_dropout(&self, detached: bool, dropout_key: Option<u64>) -> Weights {
        match &self.lora {
            None => self.params.weights(detached),
            Some(l) => {
                let mut w = self.params.weights(true);
                l.attach(&mut w, detached, dropout_key);
                w
            }
        }
    }

    /// The attached and detached views of one update forward: with adapter dropout both
    /// carry the same fresh masks (a recomputed layer must see its first forward's masks).
    pub(crate) fn update_weights(&self) -> (Weights, Weights) {
        let key = self.lora.as_ref().map(|l| l.next_dropout_key());
        (
            self.weights_with_dropout(false, key),
            self.weights_with_dropout(true, key),
        )
    }

    pub(crate) fn dims(&self) -> Dims {
        Dims {
            heads: self.config.num_attention_heads,
            kv_heads: self.config.num_key_value_heads,
            head_dim: self.config.head_dim,
            eps: self.config.rms_norm_eps,
            matmul: self.matmul,
        }
    }

    /// Rotary tables and mask for `b` rows of `t_q` new tokens at `positions`, attending over
    /// keys whose padding mask is `key_mask` (`[b, t_k]`).
    pub(crate) fn ctx(
        &self,
        positions: &[u32],
        key_mask: &[u8],
        b: usize,
        t_q: usize,
        t_k: usize,
    ) -> Result<ForwardCtx> {
        let (cos, sin) =
            rope::cos_sin(&self.inv_freq, positions, b, t_q, self.dtype, &self.device)?;
        let mask = additive_mask(key_mask, b, t_q, t_k, self.dtype, &self.device)?;
        let key_start = if self.fused_attention {
            fused_key_starts(key_mask, b, t_q, t_k)
        } else {
            None
        };
        Ok(ForwardCtx {
            cos,
            sin,
            mask,
            key_start,
        })
    }

    pub(crate) fn batch_ctx(&self, batch: &Batch) -> Result<ForwardCtx> {
        self.ctx(
            &batch.positions(),
            &batch.attention_mask,
            batch.batch,
            batch.seq_len,
            batch.seq_len,
        )
    }

    /// Embeddings through all layers (no final norm): `[b, t, hidden]`.
    pub(crate) fn run_layers(
        &self,
        w: &Weights,
        ids: &Tensor,
        ctx: &ForwardCtx,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let mut x = embed(&w.embed, ids)?;
        let mut dims = self.dims();
        if cache.is_some() && ids.elem_count() < crate::layers::BF16_MIN_ROWS {
            // A decoding step: streaming the weights bounds it, not the multiplies.
            dims.matmul = MatmulPrecision::F32;
        }
        for (i, lw) in w.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = decoder_layer(lw, &x, &ctx.inputs(), dims, c)?;
        }
        Ok(x)
    }

    /// Final normalised hidden states `[b, t, hidden]` of a padded batch.
    pub fn hidden_states(&self, batch: &Batch, detached: bool) -> Result<Tensor> {
        let w = self.weights(detached);
        let ctx = self.batch_ctx(batch)?;
        let x = self.run_layers(&w, &batch.ids_tensor(&self.device)?, &ctx, None)?;
        Ok(oneshot_kernels::rms_norm(
            &x,
            &w.norm,
            self.config.rms_norm_eps,
        )?)
    }

    /// Full logits `[b, t, vocab]` (detached; for checks and small inputs — the log-prob
    /// paths avoid materialising this).
    pub fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let h = self.hidden_states(batch, true)?;
        let w = self.weights(true);
        let (b, t, hid) = h.dims3()?;
        let h2 = h.reshape((b * t, hid))?;
        Ok(
            crate::layers::project(&h2, &w.lm_head, MatmulPrecision::F32)?.reshape((
                b,
                t,
                self.config.vocab_size,
            ))?,
        )
    }
}

/// The weights file a tensor lives in (the shard named by the index, or model.safetensors).
fn weights_file_for(dir: &Path, name: &str) -> String {
    let index = dir.join("model.safetensors.index.json");
    if let Ok(text) = std::fs::read_to_string(&index) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(shard) = v["weight_map"][name].as_str() {
                return dir.join(shard).display().to_string();
            }
        }
        return format!("{} (not listed in its weight_map)", index.display());
    }
    dir.join("model.safetensors").display().to_string()
}

#[cfg(test)]
mod tests {
    use super::fused_key_starts;

    #[test]
    fn fused_key_starts_accepts_only_masks_the_kernel_reproduces() {
        // Left padding, then content: start at the first key.
        assert_eq!(
            fused_key_starts(&[0, 0, 1, 1, 1, 1, 1, 1], 2, 4, 4),
            Some(vec![2, 0])
        );
        // Trailing padding is fine in a full forward (t_q == t_k) ...
        assert_eq!(fused_key_starts(&[0, 1, 1, 0], 1, 4, 4), Some(vec![1]));
        // ... but not when decoding, where the query would see it.
        assert_eq!(fused_key_starts(&[0, 1, 1, 0], 1, 1, 4), None);
        // Holes and all-padding rows fall back to the mask.
        assert_eq!(fused_key_starts(&[1, 0, 1, 1], 1, 4, 4), None);
        assert_eq!(fused_key_starts(&[0, 0, 0, 0], 1, 4, 4), None);
    }
}
