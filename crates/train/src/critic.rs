//! The critic of PPO (adv_estimator = gae): a copy of the initial policy's decoder (own
//! weights, trained) with a linear value head on its final normalised hidden state, as verl's
//! critic (a separate model initialised from the actor, `AutoModelForTokenClassification` with
//! one output). The value of response token j is predicted from the hidden state at the
//! position before it (the state in which token j is chosen), like the token's log-prob.
//! The head starts at zero, so the first values are 0 and GAE starts as Monte-Carlo returns.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{DType, Tensor, Var};
use oneshot_model::{Batch, Model};
use oneshot_optim::{AdamW, AdamWConfig};

pub const HEAD_WEIGHT: &str = "value_head.weight";
pub const HEAD_BIAS: &str = "value_head.bias";
const HEAD_FILE: &str = "value_head.safetensors";

pub struct Critic {
    pub trunk: Model,
    head_w: Var,
    head_b: Var,
    pub opt: AdamW,
}

impl Critic {
    /// A critic over `trunk` with a zero value head and its own AdamW.
    pub fn new(trunk: Model, adamw: AdamWConfig) -> Result<Self> {
        let hidden = trunk.config.hidden_size;
        let dev = trunk.device().clone();
        let head_w = Var::zeros((hidden, 1), DType::F32, &dev)?;
        let head_b = Var::zeros(1, DType::F32, &dev)?;
        let mut vars = trunk.vars();
        vars.push((HEAD_WEIGHT.into(), head_w.clone()));
        vars.push((HEAD_BIAS.into(), head_b.clone()));
        let opt = AdamW::new(vars, adamw)?;
        Ok(Self {
            trunk,
            head_w,
            head_b,
            opt,
        })
    }

    /// Values `[b, seq_len - response_start]` (f32) of the response positions of `batch`;
    /// attached to the critic's parameters unless `detached`.
    pub fn values(&self, batch: &Batch, response_start: usize, detached: bool) -> Result<Tensor> {
        let h = self.trunk.hidden_states(batch, detached)?;
        let r = batch.seq_len - response_start;
        let h = h.narrow(1, response_start - 1, r)?.to_dtype(DType::F32)?;
        let (b, r, hid) = h.dims3()?;
        let (w, bias) = if detached {
            (
                self.head_w.as_tensor().detach(),
                self.head_b.as_tensor().detach(),
            )
        } else {
            (
                self.head_w.as_tensor().clone(),
                self.head_b.as_tensor().clone(),
            )
        };
        let v = h.reshape((b * r, hid))?.matmul(&w)?.broadcast_add(&bias)?;
        Ok(v.reshape((b, r))?)
    }

    /// Writes `<dir>/model` (HF layout), the value head and the optimiser state.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.trunk
            .save(&dir.join("model"), Some(self.trunk.dtype()), None)?;
        let head: HashMap<String, Tensor> = [
            (HEAD_WEIGHT.to_string(), self.head_w.as_tensor().clone()),
            (HEAD_BIAS.to_string(), self.head_b.as_tensor().clone()),
        ]
        .into();
        candle_core::safetensors::save(&head, dir.join(HEAD_FILE))
            .context("writing the value head")?;
        self.opt.save_state(&dir.join("optim"))
    }

    /// Restores a critic saved by [`Critic::save`].
    pub fn load(
        dir: &Path,
        dtype: DType,
        device: &candle_core::Device,
        adamw: AdamWConfig,
    ) -> Result<Self> {
        let trunk = Model::from_dir(&dir.join("model"), dtype, device)?;
        let critic = Self::new(trunk, adamw)?;
        let head = candle_core::safetensors::load(dir.join(HEAD_FILE), device)
            .with_context(|| format!("reading {}", dir.join(HEAD_FILE).display()))?;
        for (name, var) in [(HEAD_WEIGHT, &critic.head_w), (HEAD_BIAS, &critic.head_b)] {
            let t = head
                .get(name)
                .with_context(|| format!("{}: missing `{name}`", dir.join(HEAD_FILE).display()))?;
            var.set(t)?;
        }
        let mut critic = critic;
        critic.opt.load_state(&dir.join("optim"))?;
        Ok(critic)
    }
}
