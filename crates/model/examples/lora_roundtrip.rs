//! For `scripts/make_lora_fixtures.py --check-ours`: puts adapters of our own initialisation
//! (B set non-zero, deterministically) on each LoRA fixture's base, saves them in PEFT's layout
//! under `<out>/<fixture>/` with our logits on the base fixture's batch (`ours.safetensors`),
//! for the script to load in PEFT and compare.
//!
//! Usage: lora_roundtrip <out-dir>
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use oneshot_model::lora::{LoraConfig, Target};
use oneshot_model::{Batch, Model};
use std::path::{Path, PathBuf};

/// (name, base fixture, r, alpha, target modules, rsLoRA)
type Variant = (
    &'static str,
    &'static str,
    usize,
    f64,
    &'static [&'static str],
    bool,
);

/// The fixtures of scripts/make_lora_fixtures.py.
const VARIANTS: [Variant; 4] = [
    (
        "qwen2_r8",
        "qwen2_tied_gqa",
        8,
        16.0,
        &["all-linear"],
        false,
    ),
    (
        "qwen2_r1_rslora",
        "qwen2_untied_mha",
        1,
        4.0,
        &["q_proj", "v_proj", "down_proj"],
        true,
    ),
    (
        "llama_r8_rslora",
        "llama3_ropescaled_gqa",
        8,
        12.0,
        &["all-linear"],
        true,
    ),
    (
        "llama_r1",
        "llama_bias_tied",
        1,
        2.0,
        &["q_proj", "k_proj", "o_proj", "up_proj"],
        false,
    ),
];

fn batch_of(dir: &Path) -> Result<Batch> {
    let exp = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu)?;
    let ids = &exp["input_ids"];
    let (b, t) = ids.dims2()?;
    let flat = |x: &Tensor| -> Result<Vec<i64>> { Ok(x.flatten_all()?.to_vec1::<i64>()?) };
    let ids: Vec<u32> = flat(ids)?.into_iter().map(|x| x as u32).collect();
    let mask: Vec<u8> = flat(&exp["attention_mask"])?
        .into_iter()
        .map(|x| x as u8)
        .collect();
    Batch::new(ids, mask, b, t)
}

fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: lora_roundtrip <out-dir>")?,
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (i, (name, base, r, alpha, targets, use_rslora)) in VARIANTS.into_iter().enumerate() {
        let base_dir = fixtures.join(base);
        let mut model = Model::from_dir(&base_dir, DType::F32, &Device::Cpu)?;
        let cfg = LoraConfig {
            r,
            alpha,
            dropout: 0.0,
            targets: Target::parse_list(targets)?,
            use_rslora,
        };
        model.add_lora(cfg, 100 + i as u64)?;
        for (n, v) in model.vars() {
            if n.contains("lora_B") {
                let vals: Vec<f32> = (0..v.elem_count())
                    .map(|j| 0.2 * ((j * 31 + n.len()) as f32 * 0.37).sin())
                    .collect();
                v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu)?)?;
            }
        }
        let dir = out.join(name);
        model.save_lora(&dir, Some(base))?;
        let logits = model.logits(&batch_of(&base_dir)?)?;
        candle_core::safetensors::save(
            &[("logits".to_string(), logits)].into_iter().collect(),
            dir.join("ours.safetensors"),
        )?;
        println!("{name}: saved to {}", dir.display());
    }
    Ok(())
}
