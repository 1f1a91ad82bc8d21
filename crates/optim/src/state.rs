//! Saving and restoring the AdamW state so that a resumed run continues bit-identically.
//!
//! `<dir>/adamw.safetensors` holds, per parameter `<name>`, the f32 tensors `<name>.master`,
//! `<name>.exp_avg` and `<name>.exp_avg_sq` in the parameter's shape. `<dir>/adamw.json` holds the
//! hyper-parameters, the global step count and, per parameter, its name, shape, dtype and own
//! step count. Loading checks that the parameters match by name, order and shape, restores the
//! state and writes the f32 master weights back into the parameters.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};

use crate::adamw::{AdamW, AdamWConfig};
use crate::host::write_param;

pub const STATE_FILE: &str = "adamw.safetensors";
pub const META_FILE: &str = "adamw.json";
const FORMAT: &str = "oneshot-adamw-v1";

#[derive(Debug, Serialize, Deserialize)]
struct ParamMeta {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    step: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateMeta {
    format: String,
    config: AdamWConfig,
    steps: u64,
    params: Vec<ParamMeta>,
}

/// An f32 buffer seen as a safetensors tensor, without copying.
struct F32View<'a> {
    data: &'a [f32],
    shape: Vec<usize>,
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        // safetensors is little-endian, as are the platforms candle supports.
        Cow::Borrowed(bytemuck::cast_slice(self.data))
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

impl AdamW {
    /// Master weights and moments per parameter on the host: borrowed on the host path, copied
    /// from the device buffers on the device-generic path.
    fn host_state(&self) -> Result<Vec<[Cow<'_, [f32]>; 3]>> {
        let Some(dev) = &self.device else {
            return Ok(self
                .slots
                .iter()
                .map(|s| {
                    [
                        Cow::Borrowed(s.master.as_slice()),
                        Cow::Borrowed(s.exp_avg.as_slice()),
                        Cow::Borrowed(s.exp_avg_sq.as_slice()),
                    ]
                })
                .collect());
        };
        (0..self.slots.len())
            .map(|i| {
                Ok([
                    Cow::Owned(dev.layout.to_host(&dev.master, i)?),
                    Cow::Owned(dev.layout.to_host(&dev.exp_avg, i)?),
                    Cow::Owned(dev.layout.to_host(&dev.exp_avg_sq, i)?),
                ])
            })
            .collect()
    }

    /// Writes the optimiser state into `dir` (created if missing).
    pub fn save_state(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let state = self.host_state()?;
        let mut tensors = Vec::with_capacity(self.slots.len() * 3);
        let mut params = Vec::with_capacity(self.slots.len());
        for (s, [master, exp_avg, exp_avg_sq]) in self.slots.iter().zip(&state) {
            let shape = s.var.dims().to_vec();
            for (suffix, data) in [
                ("master", master),
                ("exp_avg", exp_avg),
                ("exp_avg_sq", exp_avg_sq),
            ] {
                tensors.push((
                    format!("{}.{suffix}", s.name),
                    F32View {
                        data: data.as_ref(),
                        shape: shape.clone(),
                    },
                ));
            }
            params.push(ParamMeta {
                name: s.name.clone(),
                shape,
                dtype: format!("{:?}", s.var.dtype()).to_lowercase(),
                step: s.step,
            });
        }
        let state_path = dir.join(STATE_FILE);
        safetensors::tensor::serialize_to_file(tensors, None, &state_path)
            .with_context(|| format!("writing {}", state_path.display()))?;
        let meta = StateMeta {
            format: FORMAT.into(),
            config: self.cfg,
            steps: self.steps,
            params,
        };
        let meta_path = dir.join(META_FILE);
        std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)?)
            .with_context(|| format!("writing {}", meta_path.display()))?;
        Ok(())
    }

    /// Restores the state saved by `save_state` (hyper-parameters included) and writes the
    /// master weights into the parameters. Nothing changes if any check fails.
    pub fn load_state(&mut self, dir: &Path) -> Result<()> {
        let meta_path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        let meta: StateMeta = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", meta_path.display()))?;
        if meta.format != FORMAT {
            bail!(
                "{}: format `{}`, expected `{FORMAT}`",
                meta_path.display(),
                meta.format
            );
        }
        meta.config
            .validate()
            .with_context(|| format!("{}: config", meta_path.display()))?;
        if meta.params.len() != self.slots.len() {
            bail!(
                "{}: {} parameters saved, the optimiser has {}",
                meta_path.display(),
                meta.params.len(),
                self.slots.len()
            );
        }
        for (i, (p, s)) in meta.params.iter().zip(&self.slots).enumerate() {
            if p.name != s.name || p.shape != s.var.dims() {
                bail!(
                    "{}: parameter {i} is `{}` {:?}, the optimiser has `{}` {:?}",
                    meta_path.display(),
                    p.name,
                    p.shape,
                    s.name,
                    s.var.dims()
                );
            }
        }

        let state_path = dir.join(STATE_FILE);
        let file = std::fs::File::open(&state_path)
            .with_context(|| format!("opening {}", state_path.display()))?;
        // SAFETY: the mapping is read-only and only read while this function runs; a concurrent
        // writer truncating the file is the usual caveat of memory-mapped reads.
        let mmap = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("mapping {}", state_path.display()))?;
        let st = SafeTensors::deserialize(&mmap)
            .with_context(|| format!("parsing {}", state_path.display()))?;
        // Read everything first, so that a bad file leaves the optimiser untouched.
        let mut loaded: HashMap<String, Vec<f32>> = HashMap::new();
        for s in &self.slots {
            for suffix in ["master", "exp_avg", "exp_avg_sq"] {
                let key = format!("{}.{suffix}", s.name);
                let view = st
                    .tensor(&key)
                    .with_context(|| format!("{}: missing tensor `{key}`", state_path.display()))?;
                if view.dtype() != Dtype::F32 || view.shape() != s.var.dims() {
                    bail!(
                        "{}: tensor `{key}` is {:?} {:?}, expected F32 {:?}",
                        state_path.display(),
                        view.dtype(),
                        view.shape(),
                        s.var.dims()
                    );
                }
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                loaded.insert(key, values);
            }
        }
        if let Some(dev) = &mut self.device {
            let mut take = |suffix: &str| -> Result<candle_core::Tensor> {
                let values: Vec<Vec<f32>> = self
                    .slots
                    .iter()
                    .map(|s| {
                        loaded
                            .remove(&format!("{}.{suffix}", s.name))
                            .expect("read above")
                    })
                    .collect();
                let refs: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
                dev.layout.upload(&refs)
            };
            let (master, exp_avg, exp_avg_sq) =
                (take("master")?, take("exp_avg")?, take("exp_avg_sq")?);
            dev.master = master;
            dev.exp_avg = exp_avg;
            dev.exp_avg_sq = exp_avg_sq;
            for (i, (s, p)) in self.slots.iter_mut().zip(&meta.params).enumerate() {
                s.step = p.step;
                dev.layout
                    .scatter_one(&dev.master, i, &s.var)
                    .with_context(|| format!("restoring parameter `{}`", s.name))?;
            }
            self.cfg = meta.config;
            self.steps = meta.steps;
            return Ok(());
        }
        for (s, p) in self.slots.iter_mut().zip(&meta.params) {
            s.master = loaded
                .remove(&format!("{}.master", s.name))
                .expect("read above");
            s.exp_avg = loaded
                .remove(&format!("{}.exp_avg", s.name))
                .expect("read above");
            s.exp_avg_sq = loaded
                .remove(&format!("{}.exp_avg_sq", s.name))
                .expect("read above");
            s.step = p.step;
            write_param(&s.var, &s.master)
                .with_context(|| format!("restoring parameter `{}`", s.name))?;
        }
        self.cfg = meta.config;
        self.steps = meta.steps;
        Ok(())
    }
}
