//! Rotary position tables: inverse frequencies (with Llama-3 rescaling) and per-row cos/sin
//! for arbitrary position ids, so left-padded rows each start at position 0.
use crate::config::{ModelConfig, RopeScaling};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};

/// Inverse frequencies, computed in f32 the way transformers computes them so that the
/// angles (and so the logits) agree to f32 rounding.
pub fn inv_freq(cfg: &ModelConfig) -> Vec<f32> {
    let d = cfg.head_dim;
    let base = cfg.rope_theta as f32;
    let mut inv: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1.0f32 / base.powf(i as f32 / d as f32))
        .collect();
    if let Some(RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    }) = &cfg.rope_scaling
    {
        let (factor, lo, hi, old) = (
            *factor as f32,
            *low_freq_factor as f32,
            *high_freq_factor as f32,
            *original_max_position_embeddings as f32,
        );
        let low_freq_wavelen = old / lo;
        let high_freq_wavelen = old / hi;
        for f in inv.iter_mut() {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            // Long wavelengths are stretched by `factor`; short ones stay; in between blend.
            let scaled = if wavelen > low_freq_wavelen {
                *f / factor
            } else {
                *f
            };
            // NaN-free inputs: "not below high and not above low" is the closed range.
            let is_medium = (high_freq_wavelen..=low_freq_wavelen).contains(&wavelen);
            *f = if is_medium {
                let smooth = (old / wavelen - lo) / (hi - lo);
                (1.0 - smooth) * scaled / factor + smooth * scaled
            } else {
                scaled
            };
        }
    }
    inv
}

/// cos and sin tables of shape [b, t, head_dim/2] for `positions` given row-major as b rows of
/// t positions, in `dtype` (angles computed in f32).
pub fn cos_sin(
    inv_freq: &[f32],
    positions: &[u32],
    b: usize,
    t: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    debug_assert_eq!(positions.len(), b * t);
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(b * t * half);
    let mut sin = Vec::with_capacity(b * t * half);
    for &p in positions {
        for &f in inv_freq {
            let angle = p as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let cos = Tensor::from_vec(cos, (b, t, half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (b, t, half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama3_scaling_keeps_high_divides_low_and_blends_medium() {
        let cfg = ModelConfig::from_json(json!({"architectures": ["LlamaForCausalLM"],
            "vocab_size": 10, "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 4, "rope_theta": 10000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}))
        .unwrap();
        let mut plain = cfg.clone();
        plain.rope_scaling = None;
        let (s, p) = (inv_freq(&cfg), inv_freq(&plain));
        // head_dim 8: inv_freq = 1, 0.1, 0.01, 0.001 -> wavelengths 6.3 (medium), 63, 628, 6283 (low).
        assert_eq!(s.len(), 4);
        let smooth = (16.0 / (2.0 * std::f32::consts::PI) - 1.0) / 3.0;
        let expect0 = (1.0 - smooth) * 1.0 / 4.0 + smooth * 1.0;
        assert!((s[0] - expect0).abs() < 1e-6, "{} vs {}", s[0], expect0);
        for i in 1..4 {
            assert!((s[i] - p[i] / 4.0).abs() < 1e-9);
        }
    }
}
