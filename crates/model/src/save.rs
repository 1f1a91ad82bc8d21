//! Saving in the HF layout (same tensor names, `config.json` with the saved dtype).
use crate::model::{hf_dtype_name, parse_dtype, Model};
use anyhow::{Context, Result};
use candle_core::{DType, Tensor};
use std::path::Path;

impl Model {
    /// The dtype a save writes by default: the checkpoint's `torch_dtype`, else the model's.
    pub fn original_dtype(&self) -> DType {
        self.config
            .torch_dtype
            .as_deref()
            .and_then(|s| parse_dtype(s).ok())
            .unwrap_or(self.dtype())
    }

    /// Write an HF checkpoint to `out` (adapters merged in) (atomically, via oneshot-hf) in `dtype` (default: the
    /// original dtype), copying tokenizer/generation side files from `copy_from` if given.
    pub fn save(&self, out: &Path, dtype: Option<DType>, copy_from: Option<&Path>) -> Result<()> {
        let dtype = dtype.unwrap_or_else(|| self.original_dtype());
        // With adapters the checkpoint is the merged model (what this one computes).
        let tensors: Vec<(String, Tensor)> = self
            .merged_tensors()?
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(dtype)?)))
            .collect::<Result<_>>()?;
        let mut config = self.config.raw.clone();
        let name = serde_json::Value::from(hf_dtype_name(dtype));
        if config.get("dtype").is_some() {
            config["dtype"] = name.clone();
        }
        config["torch_dtype"] = name;
        oneshot_hf::write_checkpoint(out, &tensors, &config, copy_from, &[])
            .with_context(|| format!("saving model to {}", out.display()))
    }
}
