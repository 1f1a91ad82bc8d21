//! Checkpoints, written atomically:
//! ```text
//! <output_dir>/checkpoints/step_000020/
//!     actor/            HF layout (config.json, model.safetensors, tokenizer files)
//!     actor_adapter/    instead of actor/ with LoRA: the adapters in PEFT's layout
//!                       (adapter_config.json, adapter_model.safetensors); the base is the
//!                       run's model.path
//!     lora_state.json   (LoRA) the adapter dropout stream's position
//!     actor_optim/      AdamW state: f32 master weights and moments (adamw.safetensors/json)
//!     critic/           (adv_estimator = gae) the critic's decoder, value head and optimiser
//!     trainer_state.json  step, HAPO history, rollout accuracy history
//!     config.toml       the resolved run config
//! <output_dir>/checkpoints/latest   name of the newest complete checkpoint
//! ```
//! Everything is written into `step_000020.partial` and renamed into place at the end, so a
//! crash mid-save leaves the previous checkpoints untouched and `latest` pointing at one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::state::RunState;
use crate::trainer::Trainer;

pub const ACTOR_DIR: &str = "actor";
pub const ACTOR_ADAPTER_DIR: &str = "actor_adapter";
pub const LORA_STATE_FILE: &str = "lora_state.json";
pub const ACTOR_OPTIM_DIR: &str = "actor_optim";
pub const CRITIC_DIR: &str = "critic";
pub const STATE_FILE: &str = "trainer_state.json";
pub const CONFIG_FILE: &str = "config.toml";
const LATEST: &str = "latest";

pub fn checkpoints_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("checkpoints")
}

pub fn step_dir_name(step: usize) -> String {
    format!("step_{step:06}")
}

/// Saves the trainer after `t.state.step` completed steps and returns the checkpoint path.
pub fn save(t: &Trainer, output_dir: &Path) -> Result<PathBuf> {
    let root = checkpoints_dir(output_dir);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let name = step_dir_name(t.state.step);
    let final_dir = root.join(&name);
    let tmp = root.join(format!("{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp)?;
    let model = &t.policy.model;
    match model.lora() {
        Some(lora) => {
            model.save_lora(&tmp.join(ACTOR_ADAPTER_DIR), Some(&t.cfg.model.path))?;
            let state = LoraState {
                dropout_calls: lora.dropout_calls(),
            };
            write_file(
                &tmp.join(LORA_STATE_FILE),
                serde_json::to_string_pretty(&state)?.as_bytes(),
            )?;
        }
        None => model.save(
            &tmp.join(ACTOR_DIR),
            Some(model.dtype()),
            Some(&t.policy.source_dir),
        )?,
    }
    t.opt.save_state(&tmp.join(ACTOR_OPTIM_DIR))?;
    if let Some(critic) = &t.critic {
        critic.save(&tmp.join(CRITIC_DIR))?;
    }
    write_file(
        &tmp.join(STATE_FILE),
        serde_json::to_string_pretty(&t.state)?.as_bytes(),
    )?;
    write_file(&tmp.join(CONFIG_FILE), t.cfg.to_toml_string()?.as_bytes())?;
    sync_dir(&tmp)?;
    if final_dir.exists() {
        // A checkpoint of the same step from an earlier attempt (a run resumed from before it).
        std::fs::remove_dir_all(&final_dir)
            .with_context(|| format!("replacing {}", final_dir.display()))?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("renaming {} into place", tmp.display()))?;
    sync_dir(&root)?;
    let latest_tmp = root.join(format!("{LATEST}.tmp"));
    write_file(&latest_tmp, name.as_bytes())?;
    std::fs::rename(&latest_tmp, root.join(LATEST))?;
    sync_dir(&root)?;
    Ok(final_dir)
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(output_dir: &Path) -> Result<Option<PathBuf>> {
    let root = checkpoints_dir(output_dir);
    let pointer = root.join(LATEST);
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer)
        .with_context(|| format!("reading {}", pointer.display()))?;
    let dir = root.join(name.trim());
    if !dir.join(STATE_FILE).is_file() {
        bail!(
            "{} names {}, which is not a complete checkpoint",
            pointer.display(),
            dir.display()
        );
    }
    Ok(Some(dir))
}

/// Removes all but the newest `keep` checkpoints (0 = keep all).
pub fn prune(output_dir: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let root = checkpoints_dir(output_dir);
    let mut steps: Vec<PathBuf> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step_") && !n.ends_with(".partial"))
        })
        .collect();
    steps.sort();
    let n = steps.len();
    for dir in steps.into_iter().take(n.saturating_sub(keep)) {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing old checkpoint {}", dir.display()))?;
    }
    Ok(())
}

/// What a LoRA run carries besides the adapters and the optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoraState {
    /// Update forwards done (each drew its own dropout masks).
    pub dropout_calls: u64,
}

pub fn read_lora_state(dir: &Path) -> Result<LoraState> {
    let path = dir.join(LORA_STATE_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn read_state(dir: &Path) -> Result<RunState> {
    let path = dir.join(STATE_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directory fsync makes renames durable on Linux; other platforms may refuse to open a dir.
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
    Ok(())
}
