//! Loading HF safetensors checkpoints: one `model.safetensors`, or an index json plus shards.

use crate::files;
use anyhow::{bail, Context, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Load every tensor of the checkpoint in `dir`, converting floating-point tensors (bf16, f16, f32,
/// f64 on disk) to `dtype`. Integer tensors keep their dtype (they are buffers, not weights).
///
/// A sharded checkpoint (`model.safetensors.index.json`) takes precedence over a single file; only
/// the tensors listed in the index are returned, and each must be in the shard the index names.
/// Errors name the file, and the tensor when one is involved.
pub fn load_safetensors(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let index = dir.join(files::WEIGHTS_INDEX);
    let single = dir.join(files::WEIGHTS);
    if index.is_file() {
        load_sharded(dir, &index, dtype, device)
    } else if single.is_file() {
        let st = mmap(&single)?;
        let mut out = HashMap::new();
        for (name, _) in st.tensors() {
            let t = load_one(&st, &name, &single, dtype, device)?;
            out.insert(name, t);
        }
        Ok(out)
    } else if !dir.is_dir() {
        bail!("model directory {} does not exist", dir.display())
    } else {
        bail!(
            "no weights in {}: expected {} or {}",
            dir.display(),
            files::WEIGHTS,
            files::WEIGHTS_INDEX
        )
    }
}

/// The `weight_map` of an index file: tensor name -> shard file name (relative to the index).
pub(crate) fn read_index(index: &Path) -> Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index)
        .with_context(|| format!("reading safetensors index {}", index.display()))?;
    let parsed: Index = serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing safetensors index {} (expected a \"weight_map\" object)",
            index.display()
        )
    })?;
    for (tensor, shard) in &parsed.weight_map {
        // Shards must sit next to the index: refuse paths that would escape the model directory.
        if shard.is_empty()
            || shard.contains('/')
            || shard.contains('\\')
            || shard == "."
            || shard == ".."
        {
            bail!(
                "safetensors index {}: tensor {tensor} maps to invalid shard file name {shard:?}",
                index.display()
            );
        }
    }
    Ok(parsed.weight_map)
}

fn load_sharded(
    dir: &Path,
    index: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let weight_map = read_index(index)?;
    if weight_map.is_empty() {
        bail!("safetensors index {} lists no tensors", index.display());
    }
    // Group by shard so each file is mapped once.
    let mut by_shard: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tensor, shard) in &weight_map {
        by_shard
            .entry(shard.as_str())
            .or_default()
            .push(tensor.as_str());
    }
    // Check every shard exists before loading anything: a partial download fails fast and completely.
    for (shard, tensors) in &by_shard {
        let path = dir.join(shard);
        if !path.is_file() {
            bail!(
                "shard {} listed in {} is missing (it holds {} tensors, e.g. {})",
                path.display(),
                index.display(),
                tensors.len(),
                tensors[0]
            );
        }
    }
    let mut out = HashMap::with_capacity(weight_map.len());
    for (shard, tensors) in by_shard {
        let path = dir.join(shard);
        let st = mmap(&path)?;
        let present: std::collections::HashSet<String> =
            st.tensors().into_iter().map(|(n, _)| n).collect();
        for name in tensors {
            if !present.contains(name) {
                bail!(
                    "tensor {name} is listed in {} under shard {} but that file does not contain it",
                    index.display(),
                    path.display()
                );
            }
            let t = load_one(&st, name, &path, dtype, device)?;
            out.insert(name.to_string(), t);
        }
    }
    Ok(out)
}

fn mmap(path: &Path) -> Result<MmapedSafetensors> {
    // SAFETY: the file is only read; mutating a checkpoint while it is being loaded is outside the
    // contract (as for every mmap-based loader). Mapping avoids reading multi-GB files into memory
    // before converting them.
    unsafe { MmapedSafetensors::new(path) }
        .with_context(|| format!("reading safetensors file {}", path.display()))
}

fn load_one(
    st: &MmapedSafetensors,
    name: &str,
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let t = st
        .load(name, device)
        .with_context(|| format!("loading tensor {name} from {}", path.display()))?;
    if t.dtype().is_float() && t.dtype() != dtype {
        t.to_dtype(dtype).with_context(|| {
            format!(
                "converting tensor {name} from {} to {dtype:?}",
                path.display()
            )
        })
    } else {
        Ok(t)
    }
}

/// Paths of all weight files the checkpoint in `dir` needs (the single file, or index + shards).
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(files::WEIGHTS_INDEX);
    if index.is_file() {
        let mut shards: Vec<String> = read_index(&index)?.into_values().collect();
        shards.sort();
        shards.dedup();
        let mut out = vec![index];
        out.extend(shards.into_iter().map(|s| dir.join(s)));
        Ok(out)
    } else {
        Ok(vec![dir.join(files::WEIGHTS)])
    }
}
