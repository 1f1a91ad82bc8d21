//! Resolving a model spec (local directory or hub id) to a directory of HF files.
//!
//! Hub models live in the standard HF cache layout shared with Python tools:
//! `<cache>/models--<org>--<name>/{refs/<revision>, snapshots/<commit>/<files>, blobs/}`.
//! A model already complete in the cache is used without any network access; otherwise, unless
//! offline mode is on, the missing files are fetched with `hf-hub` into the same cache.

use crate::{files, safetensors_load};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A hub model id with the revision to use (`"org/name"` or `"org/name@revision"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSpec {
    pub repo_id: String,
    /// Branch, tag or commit hash; `main` when not given.
    pub revision: String,
}

impl HubSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let (id, revision) = match spec.split_once('@') {
            Some((id, rev)) => (id, rev),
            None => (spec, "main"),
        };
        let valid_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() > 2 || !parts.iter().all(|p| valid_part(p)) {
            bail!("{spec:?} is neither an existing local directory nor a hub id like \"org/name\" or \"org/name@revision\"");
        }
        if revision.is_empty() || revision.contains("..") || revision.starts_with('/') {
            bail!("invalid revision {revision:?} in model spec {spec:?}");
        }
        Ok(Self {
            repo_id: id.to_string(),
            revision: revision.to_string(),
        })
    }

    /// Folder of this repo inside the hub cache (`models--org--name`).
    pub fn cache_folder(&self) -> String {
        format!("models--{}", self.repo_id.replace('/', "--"))
    }
}

/// Where hub files are cached: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (same order as huggingface_hub).
pub fn hub_cache_dir() -> PathBuf {
    HubEnv::from_env().cache_dir
}

/// Environment-derived settings of hub access; separate from the env so tests can pass their own.
#[derive(Clone, Debug)]
pub(crate) struct HubEnv {
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub endpoint: Option<String>,
    pub token: Option<String>,
}

impl HubEnv {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = if let Some(c) = var("HF_HUB_CACHE") {
            PathBuf::from(c)
        } else if let Some(h) = var("HF_HOME") {
            PathBuf::from(h).join("hub")
        } else if let Some(x) = var("XDG_CACHE_HOME") {
            PathBuf::from(x).join("huggingface").join("hub")
        } else {
            let home = var("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache").join("huggingface").join("hub")
        };
        let offline = var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
            .unwrap_or(false);
        Self {
            cache_dir,
            offline,
            endpoint: var("HF_ENDPOINT"),
            token: var("HF_TOKEN"),
        }
    }
}

/// Resolve `spec` to a directory holding config.json, tokenizer.json and safetensors weights
/// (plus generation_config.json / tokenizer_config.json when the model has them).
///
/// `spec` is an existing local directory, or a hub id `org/name[@revision]` looked up in the HF
/// cache and downloaded there when missing. With `HF_HUB_OFFLINE=1` nothing is downloaded: a model
/// not complete in the cache is an error naming the id and the cache directory.
pub fn resolve_model_dir(spec: &str) -> Result<PathBuf> {
    resolve_with(spec, &HubEnv::from_env())
}

pub(crate) fn resolve_with(spec: &str, env: &HubEnv) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        bail!("model path {spec} exists but is not a directory");
    }
    if spec.starts_with('/') || spec.starts_with('.') || spec.starts_with('~') {
        bail!("local model directory {spec} does not exist");
    }
    let hub = HubSpec::parse(spec)?;
    match lookup_cache(&env.cache_dir, &hub)? {
        CacheLookup::Complete(dir) => Ok(dir),
        lookup if env.offline => {
            let detail = match lookup {
                CacheLookup::Incomplete { dir, missing } => {
                    format!("snapshot {} lacks {}", dir.display(), missing.join(", "))
                }
                _ => "it is not in the cache".to_string(),
            };
            bail!(
                "model {} (revision {}) is not available offline (HF_HUB_OFFLINE is set): {detail}; \
                 hub cache directory: {}",
                hub.repo_id,
                hub.revision,
                env.cache_dir.display()
            )
        }
        _ => download(&hub, env),
    }
}

#[derive(Debug)]
enum CacheLookup {
    Absent,
    Incomplete { dir: PathBuf, missing: Vec<String> },
    Complete(PathBuf),
}

/// Find the snapshot of `hub` in the cache and check it has every file a model needs.
fn lookup_cache(cache: &Path, hub: &HubSpec) -> Result<CacheLookup> {
    let repo_dir = cache.join(hub.cache_folder());
    let ref_file = repo_dir.join("refs").join(&hub.revision);
    let commit = if ref_file.is_file() {
        std::fs::read_to_string(&ref_file)
            .with_context(|| format!("reading cache ref {}", ref_file.display()))?
            .trim()
            .to_string()
    } else {
        // A commit hash given as the revision has a snapshot but no ref file.
        hub.revision.clone()
    };
    if commit.is_empty() || commit.contains('/') {
        return Ok(CacheLookup::Absent);
    }
    let dir = repo_dir.join("snapshots").join(&commit);
    if !dir.is_dir() {
        return Ok(CacheLookup::Absent);
    }
    let missing = missing_files(&dir)?;
    Ok(if missing.is_empty() {
        CacheLookup::Complete(dir)
    } else {
        CacheLookup::Incomplete { dir, missing }
    })
}

/// Required files absent from a model directory (config, tokenizer, every weight file).
fn missing_files(dir: &Path) -> Result<Vec<String>> {
    let mut missing: Vec<String> = [files::CONFIG, files::TOKENIZER]
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if !dir.join(files::WEIGHTS_INDEX).is_file() && !dir.join(files::WEIGHTS).is_file() {
        missing.push(format!("{} (or {})", files::WEIGHTS, files::WEIGHTS_INDEX));
    } else {
        for f in safetensors_load::weight_files(dir)? {
            if !f.is_file() {
                missing.push(
                    f.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(missing)
}

/// Fetch the needed files of `hub` into the cache with hf-hub and return their snapshot directory.
fn download(hub: &HubSpec, env: &HubEnv) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    let cache = Cache::new(env.cache_dir.clone());
    let token = env.token.clone().or_else(|| cache.token());
    let mut builder = ApiBuilder::from_cache(cache).with_token(token);
    if let Some(endpoint) = &env.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder
        .build()
        .context("setting up the Hugging Face hub client")?;
    let repo = api.repo(Repo::with_revision(
        hub.repo_id.clone(),
        RepoType::Model,
        hub.revision.clone(),
    ));
    let ctx = || {
        format!(
            "model {}@{} (cache {})",
            hub.repo_id,
            hub.revision,
            env.cache_dir.display()
        )
    };
    let info = repo
        .info()
        .with_context(|| format!("listing the files of {}", ctx()))?;
    let listed: std::collections::HashSet<&str> =
        info.siblings.iter().map(|s| s.rfilename.as_str()).collect();

    let fetch = |name: &str| -> Result<PathBuf> {
        repo.get(name)
            .with_context(|| format!("downloading {name} of {}", ctx()))
    };
    let config = fetch(files::CONFIG)?;
    fetch(files::TOKENIZER)?;
    for optional in [
        files::GENERATION_CONFIG,
        files::TOKENIZER_CONFIG,
        files::SPECIAL_TOKENS_MAP,
        files::CHAT_TEMPLATE_JINJA,
    ] {
        if listed.contains(optional) {
            fetch(optional)?;
        }
    }
    if listed.contains(files::WEIGHTS_INDEX) {
        let index = fetch(files::WEIGHTS_INDEX)?;
        let mut shards: Vec<String> = safetensors_load::read_index(&index)?
            .into_values()
            .collect();
        shards.sort();
        shards.dedup();
        for shard in shards {
            fetch(&shard)?;
        }
    } else if listed.contains(files::WEIGHTS) {
        fetch(files::WEIGHTS)?;
    } else {
        bail!(
            "{} has no {} or {} (only safetensors weights are supported)",
            ctx(),
            files::WEIGHTS,
            files::WEIGHTS_INDEX
        );
    }
    let dir = config.parent().map(Path::to_path_buf).with_context(|| {
        format!(
            "downloaded file {} has no parent directory",
            config.display()
        )
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_revisions() {
        let s = HubSpec::parse("Qwen/Qwen2.5-Math-1.5B").unwrap();
        assert_eq!(
            (s.repo_id.as_str(), s.revision.as_str()),
            ("Qwen/Qwen2.5-Math-1.5B", "main")
        );
        assert_eq!(s.cache_folder(), "models--Qwen--Qwen2.5-Math-1.5B");
        let s = HubSpec::parse("org/name@v1.0").unwrap();
        assert_eq!(
            (s.repo_id.as_str(), s.revision.as_str()),
            ("org/name", "v1.0")
        );
        assert_eq!(HubSpec::parse("gpt2").unwrap().repo_id, "gpt2");
        for bad in [
            "a/b/c",
            "org/",
            "/x",
            "org/na me",
            "org/name@",
            "org/..",
            "x@../y",
        ] {
            assert!(HubSpec::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
