//! Writing HF-layout checkpoints atomically.
//!
//! Everything is written into a fresh temporary directory next to the destination, fsynced, and
//! only then renamed into place. An existing checkpoint at the destination is moved aside first and
//! deleted only after the new one is in place, so a failure at any point before the final rename
//! leaves the old checkpoint untouched.

use crate::files;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

/// HF `save_pretrained` default shard size (5 GB, decimal as in transformers).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// Knobs of [`write_checkpoint_with`].
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Start a new shard when adding the next tensor would exceed this many bytes. A single tensor
    /// larger than this gets a shard of its own.
    pub max_shard_bytes: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
        }
    }
}

/// Write an HF-layout checkpoint to `out` with the default shard size; see [`write_checkpoint_with`].
pub fn write_checkpoint(
    out: &Path,
    tensors: &[(String, Tensor)],
    config: &serde_json::Value,
    copy_from: Option<&Path>,
    extra_files: &[(String, Vec<u8>)],
) -> Result<()> {
    write_checkpoint_with(
        out,
        tensors,
        config,
        copy_from,
        extra_files,
        &WriteOptions::default(),
    )
}

/// Write an HF-layout checkpoint to `out`:
/// - tensors (in their own dtype) to `model.safetensors`, or to `model-0000i-of-0000n.safetensors`
///   shards plus `model.safetensors.index.json` when they exceed `opts.max_shard_bytes`;
/// - `config` to `config.json`;
/// - the tokenizer/generation side files of `copy_from` that exist there;
/// - `extra_files` (plain file names, written last so they may override copied side files).
///
/// `out` is replaced atomically; an existing `out` must be a checkpoint directory (or empty).
pub fn write_checkpoint_with(
    out: &Path,
    tensors: &[(String, Tensor)],
    config: &serde_json::Value,
    copy_from: Option<&Path>,
    extra_files: &[(String, Vec<u8>)],
    opts: &WriteOptions,
) -> Result<()> {
    validate_tensor_names(tensors)?;
    if let Some(src) = copy_from {
        if !src.is_dir() {
            bail!(
                "checkpoint source directory {} (copy_from) does not exist",
                src.display()
            );
        }
    }
    check_replaceable(out)?;
    let parent = parent_dir(out)?;
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("creating parent directory {}", parent.display()))?;

    let staging = Staging::create(&parent, out)?;
    write_weights(staging.path(), tensors, opts.max_shard_bytes)?;
    write_file(
        &staging.path().join(files::CONFIG),
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    if let Some(src) = copy_from {
        for name in files::TOKENIZER_SIDE_FILES {
            let from = src.join(name);
            if from.is_file() {
                let bytes =
                    std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
                write_file(&staging.path().join(name), &bytes)?;
            }
        }
    }
    for (name, bytes) in extra_files {
        validate_extra_name(name)?;
        write_file(&staging.path().join(name), bytes)?;
    }
    sync_dir(staging.path())?;
    staging.commit(out)
}

fn validate_tensor_names(tensors: &[(String, Tensor)]) -> Result<()> {
    let mut seen = HashSet::new();
    for (name, _) in tensors {
        if name.is_empty() {
            bail!("cannot save a tensor with an empty name");
        }
        if !seen.insert(name.as_str()) {
            bail!("tensor name {name} appears twice in the checkpoint being saved");
        }
    }
    Ok(())
}

fn validate_extra_name(name: &str) -> Result<()> {
    let reserved = [files::CONFIG, files::WEIGHTS, files::WEIGHTS_INDEX];
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        bail!("extra checkpoint file name {name:?} must be a plain file name");
    }
    if reserved.contains(&name) || (name.starts_with("model-") && name.ends_with(".safetensors")) {
        bail!("extra checkpoint file {name} would overwrite the weights or config.json");
    }
    Ok(())
}

/// Refuse to replace anything that is not a previous checkpoint: `out` is deleted on success.
fn check_replaceable(out: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", out.display())),
    };
    if !meta.is_dir() {
        bail!(
            "checkpoint destination {} exists and is not a directory",
            out.display()
        );
    }
    let looks_like_checkpoint = [files::CONFIG, files::WEIGHTS, files::WEIGHTS_INDEX]
        .iter()
        .any(|f| out.join(f).exists());
    let empty = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .next()
        .is_none();
    if !looks_like_checkpoint && !empty {
        bail!(
            "refusing to replace {}: it is not empty and holds no config.json or model.safetensors",
            out.display()
        );
    }
    Ok(())
}

fn parent_dir(out: &Path) -> Result<PathBuf> {
    if out.file_name().is_none() {
        bail!(
            "checkpoint destination {} has no final path component",
            out.display()
        );
    }
    Ok(match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// Assign tensors to shards greedily in the given order, like `save_pretrained` does.
fn plan_shards(tensors: &[(String, Tensor)], max_shard_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_bytes = 0u64;
    for (i, (_, t)) in tensors.iter().enumerate() {
        let bytes = tensor_bytes(t);
        if !current.is_empty() && current_bytes + bytes > max_shard_bytes {
            shards.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(i);
        current_bytes += bytes;
    }
    if !current.is_empty() || shards.is_empty() {
        shards.push(current);
    }
    shards
}

fn tensor_bytes(t: &Tensor) -> u64 {
    (t.elem_count() * t.dtype().size_in_bytes()) as u64
}

fn write_weights(dir: &Path, tensors: &[(String, Tensor)], max_shard_bytes: u64) -> Result<()> {
    let shards = plan_shards(tensors, max_shard_bytes);
    // transformers refuses safetensors files without this metadata entry.
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    if shards.len() == 1 {
        return write_shard(&dir.join(files::WEIGHTS), tensors, &shards[0], &metadata);
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    for (k, members) in shards.iter().enumerate() {
        let name = format!("model-{:05}-of-{:05}.safetensors", k + 1, n);
        write_shard(&dir.join(&name), tensors, members, &metadata)?;
        for &i in members {
            weight_map.insert(tensors[i].0.clone(), name.clone());
        }
    }
    let total: u64 = tensors.iter().map(|(_, t)| tensor_bytes(t)).sum();
    let index =
        serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    write_file(
        &dir.join(files::WEIGHTS_INDEX),
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )
}

fn write_shard(
    path: &Path,
    tensors: &[(String, Tensor)],
    members: &[usize],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    // Bring tensors to the host first so device errors surface here as errors (the serializer's
    // own device copy cannot report them).
    let mut host = Vec::with_capacity(members.len());
    for &i in members {
        let (name, t) = &tensors[i];
        let t = t
            .to_device(&Device::Cpu)
            .and_then(|t| t.contiguous())
            .with_context(|| format!("copying tensor {name} to the host for saving"))?;
        host.push((name.as_str(), t));
    }
    safetensors::serialize_to_file(host, Some(metadata.clone()), path)
        .with_context(|| format!("writing {}", path.display()))?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directory fsync makes the renames/creations inside it durable (POSIX); a no-op elsewhere.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))?;
    let _ = dir;
    Ok(())
}

/// A temporary directory next to the destination, removed on drop unless committed.
struct Staging {
    path: Option<PathBuf>,
}

impl Staging {
    fn create(parent: &Path, out: &Path) -> Result<Self> {
        let base = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = unique_sibling(parent, &base, "tmp");
        std::fs::create_dir(&path).with_context(|| {
            format!("creating temporary checkpoint directory {}", path.display())
        })?;
        Ok(Self { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("staging path is present until commit")
    }

    /// Move the finished directory to `out`, replacing an existing checkpoint there.
    fn commit(mut self, out: &Path) -> Result<()> {
        let staged = self
            .path
            .take()
            .expect("staging path is present until commit");
        let parent = parent_dir(out)?;
        if out.exists() {
            let base = out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let backup = unique_sibling(&parent, &base, "old");
            if let Err(e) = std::fs::rename(out, &backup) {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(e)
                    .with_context(|| format!("moving old checkpoint {} aside", out.display()));
            }
            if let Err(e) = std::fs::rename(&staged, out) {
                // Put the old checkpoint back; the new one is discarded.
                let _ = std::fs::rename(&backup, out);
                let _ = std::fs::remove_dir_all(&staged);
                return Err(e)
                    .with_context(|| format!("moving new checkpoint into {}", out.display()));
            }
            sync_dir(&parent)?;
            std::fs::remove_dir_all(&backup).with_context(|| {
                format!("removing previous checkpoint copy {}", backup.display())
            })?;
        } else {
            if let Err(e) = std::fs::rename(&staged, out) {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(e)
                    .with_context(|| format!("moving new checkpoint into {}", out.display()));
            }
            sync_dir(&parent)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn unique_sibling(parent: &Path, base: &str, tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    parent.join(format!(".{base}.{tag}-{}-{nanos}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn t(n: usize) -> Tensor {
        Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn shards_are_greedy_in_order_and_oversized_tensors_stand_alone() {
        let ts: Vec<(String, Tensor)> = [4, 4, 10, 1, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("t{i}"), t(n)))
            .collect();
        // bytes: 16, 16, 40, 4, 4 with limit 32
        assert_eq!(plan_shards(&ts, 32), vec![vec![0, 1], vec![2], vec![3, 4]]);
        assert_eq!(plan_shards(&ts, 1_000), vec![vec![0, 1, 2, 3, 4]]);
        assert_eq!(plan_shards(&[], 10), vec![Vec::<usize>::new()]);
    }
}
