//! Load an HF checkpoint and save it again in a given dtype; used by
//! `scripts/make_model_fixtures.py --check-roundtrip` to show transformers reads our saves.
//!
//! Usage: model_roundtrip <src dir> <dst dir> <f32|bf16|f16>
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use oneshot_model::{parse_dtype, Model};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst, dtype] = args.as_slice() else {
        bail!("usage: model_roundtrip <src dir> <dst dir> <f32|bf16|f16>");
    };
    let model = Model::from_dir(Path::new(src), DType::F32, &Device::Cpu)?;
    model.save(
        Path::new(dst),
        Some(parse_dtype(dtype)?),
        Some(Path::new(src)),
    )?;
    Ok(())
}
