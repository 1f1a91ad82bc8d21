//! `generation_config.json`, with `config.json` as the fallback source of special token ids.

use crate::files;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Sampling defaults and special token ids shipped with a model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationConfig {
    /// Generation stops at any of these (HF allows an int or a list).
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
}

impl GenerationConfig {
    /// Read `generation_config.json` from `dir`; token ids it lacks come from `config.json`.
    /// At least one of the two files must exist.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let gen_path = dir.join(files::GENERATION_CONFIG);
        let cfg_path = dir.join(files::CONFIG);
        let gen = read_json_if_present(&gen_path)?;
        let cfg = read_json_if_present(&cfg_path)?;
        if gen.is_none() && cfg.is_none() {
            bail!(
                "neither {} nor {} found in {}",
                files::GENERATION_CONFIG,
                files::CONFIG,
                dir.display()
            );
        }
        let mut out = match &gen {
            Some(v) => Self::from_json(v).with_context(|| format!("in {}", gen_path.display()))?,
            None => Self::default(),
        };
        if let Some(cfg) = &cfg {
            let fallback = Self::token_ids_from_json(cfg)
                .with_context(|| format!("in {}", cfg_path.display()))?;
            if out.eos_token_ids.is_empty() {
                out.eos_token_ids = fallback.eos_token_ids;
            }
            out.bos_token_id = out.bos_token_id.or(fallback.bos_token_id);
            out.pad_token_id = out.pad_token_id.or(fallback.pad_token_id);
        }
        Ok(out)
    }

    /// Parse a `generation_config.json` object (null fields count as absent).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut out = Self::token_ids_from_json(v)?;
        out.temperature = opt_f64(v, "temperature")?;
        out.top_p = opt_f64(v, "top_p")?;
        out.top_k = opt_u64(v, "top_k")?.map(|k| k as usize);
        Ok(out)
    }

    fn token_ids_from_json(v: &Value) -> Result<Self> {
        if !v.is_object() {
            bail!("expected a JSON object at the top level");
        }
        let eos_token_ids = match v.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, x)| token_id(x).with_context(|| format!("field eos_token_id[{i}]")))
                .collect::<Result<_>>()?,
            Some(x) => vec![token_id(x).context("field eos_token_id")?],
        };
        Ok(Self {
            eos_token_ids,
            pad_token_id: opt_u64(v, "pad_token_id")?.map(|x| x as u32),
            bos_token_id: opt_u64(v, "bos_token_id")?.map(|x| x as u32),
            ..Self::default()
        })
    }
}

fn read_json_if_present(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn token_id(x: &Value) -> Result<u32> {
    x.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| anyhow::anyhow!("expected a non-negative token id, got {x}"))
}

fn opt_u64(v: &Value, key: &str) -> Result<Option<u64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_u64() {
            Some(n) if key.ends_with("token_id") && u32::try_from(n).is_err() => {
                bail!("field {key}: token id {n} does not fit in u32")
            }
            Some(n) => Ok(Some(n)),
            None => bail!("field {key}: expected a non-negative integer, got {x}"),
        },
    }
}

fn opt_f64(v: &Value, key: &str) -> Result<Option<f64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("field {key}: expected a number, got {x}")),
    }
}
