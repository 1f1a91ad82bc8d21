//! `oneshot export`: a LoRA run's adapters as files other tools read: the adapters alone in
//! PEFT's layout, or (`--merge`) one HF checkpoint with `W + s B A` in every adapted weight.

use std::path::PathBuf;

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use oneshot_model::{parse_dtype, Model};

#[derive(clap::Args)]
pub struct Args {
    /// Base model directory (the run's model.path).
    #[arg(long)]
    model: PathBuf,
    /// Adapter directory in PEFT's layout, or a checkpoint (`checkpoints/step_N`) holding one
    /// in `actor_adapter/`.
    #[arg(long)]
    adapter: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Write the merged model (HF layout, tokenizer files copied from --model) instead of
    /// the adapters.
    #[arg(long)]
    merge: bool,
    /// dtype of the merged weights (default: the base's `torch_dtype`).
    #[arg(long)]
    dtype: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    let nested = a.adapter.join(oneshot_train::checkpoint::ACTOR_ADAPTER_DIR);
    let adapter = if nested.is_dir() {
        nested
    } else {
        a.adapter.clone()
    };
    if !adapter
        .join(oneshot_model::lora::peft::CONFIG_FILE)
        .is_file()
    {
        bail!(
            "{} holds no {} (give a PEFT adapter directory or a LoRA checkpoint)",
            a.adapter.display(),
            oneshot_model::lora::peft::CONFIG_FILE
        );
    }
    if a.dtype.is_some() && !a.merge {
        bail!("--dtype applies to --merge only (adapters are written in f32)");
    }
    let dtype = a.dtype.as_deref().map(parse_dtype).transpose()?;
    // The merge is computed in f32 and rounded once to the output dtype.
    let mut model = Model::from_dir(&a.model, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading the base {}", a.model.display()))?;
    model.load_lora(&adapter)?;
    if a.merge {
        let dtype = dtype.unwrap_or_else(|| model.original_dtype());
        model.save(&a.out, Some(dtype), Some(&a.model))?;
        println!(
            "merged {} into {}: {} ({dtype:?})",
            adapter.display(),
            a.model.display(),
            a.out.display()
        );
    } else {
        model.save_lora(&a.out, Some(&a.model.display().to_string()))?;
        println!("adapters of {}: {}", adapter.display(), a.out.display());
    }
    Ok(0)
}
