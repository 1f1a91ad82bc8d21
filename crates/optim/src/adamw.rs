//! AdamW with f32 master weights and global grad-norm clipping, in one fused parallel pass.
//!
//! Semantics follow `torch.optim.AdamW` (single-tensor path) preceded by
//! `torch.nn.utils.clip_grad_norm_`:
//!
//! ```text
//! norm = sqrt(sum over all grads of g^2);  coef = max_norm / (norm + 1e-6), applied if < 1
//! g   *= coef
//! p   *= 1 - lr * wd                      (decoupled weight decay)
//! m    = m + (1 - b1) * (g - m)
//! v    = v * b2 + (1 - b2) * g * g
//! p   += -(lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//!
//! Parameters may be f32, bf16 or f16 `Var`s; the optimiser keeps an f32 master copy and the
//! moments in f32, updates the master and writes it back (rounded) into the `Var`. A parameter
//! without a gradient is skipped entirely, as torch skips `p.grad is None`, and its own step
//! count does not advance. A non-finite gradient anywhere refuses the whole step.
//!
//! Where the state lives is decided once, at construction, by `oneshot_kernels::device_path`:
//! on the host path the master weights and moments are host vectors updated by one fused
//! parallel pass; on the device-generic path they are flat f32 buffers on the parameters' device
//! updated with tensor ops (`crate::device`). Both compute the same f32 arithmetic.

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use candle_core::{backprop::GradStore, DType, Tensor, Var};
use oneshot_kernels::device_path::{self, StepPath};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::accumulate::GradAccumulator;
use crate::device::{clip_coef, DeviceAdamW, DeviceGrads};
use crate::host::{host_grad, write_param, GradView, HostGrad, CHUNK};

/// torch's clip_grad_norm_ adds this to the norm before dividing.
pub const CLIP_EPS: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Base learning rate (the value `step` receives may differ under a schedule).
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// Global grad-norm clipping threshold; `None` = no clipping.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    /// The paper's optimiser: lr 1e-6, betas (0.9, 0.999), weight decay 0.01, clip 1.0.
    fn default() -> Self {
        Self {
            lr: 1e-6,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
        }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            bail!("AdamW: betas ({b1}, {b2}) must be in [0, 1)");
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            bail!("AdamW: eps {} must be > 0", self.eps);
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            bail!("AdamW: weight_decay {} must be >= 0", self.weight_decay);
        }
        if let Some(c) = self.max_grad_norm {
            if c.is_nan() || c <= 0.0 {
                bail!("AdamW: max_grad_norm {c} must be > 0");
            }
        }
        Ok(())
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Factor the gradients were multiplied by (1 when not clipped).
    pub clip_coef: f64,
    /// Optimiser steps taken so far, this one included.
    pub step: u64,
}

/// Optimiser state of one parameter (the vectors are empty on the device-generic path, whose
/// state is in [`AdamW::device`]).
pub(crate) struct ParamSlot {
    pub name: String,
    pub var: Var,
    pub master: Vec<f32>,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
    /// Steps this parameter has taken (torch keeps one count per parameter).
    pub step: u64,
}

pub struct AdamW {
    pub(crate) cfg: AdamWConfig,
    pub(crate) slots: Vec<ParamSlot>,
    pub(crate) steps: u64,
    /// The state on the device-generic path; `None` on the host path.
    pub(crate) device: Option<DeviceAdamW>,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("cfg", &self.cfg)
            .field("steps", &self.steps)
            .field("path", &self.path())
            .field("params", &self.slots.len())
            .field("scalars", &self.num_params())
            .finish()
    }
}

impl AdamW {
    /// An optimiser on the path `oneshot_kernels::device_path` picks for the parameters' device.
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let path = match vars.first() {
            Some((_, v)) => device_path::step_path(v.device())?,
            None => StepPath::Host,
        };
        Self::with_path(vars, cfg, path)
    }

    /// An optimiser on the given path (tests force the device-generic path on the CPU).
    pub fn with_path(vars: Vec<(String, Var)>, cfg: AdamWConfig, path: StepPath) -> Result<Self> {
        cfg.validate()?;
        let mut seen = HashSet::new();
        let mut slots = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !seen.insert(name.clone()) {
                bail!("AdamW: parameter name `{name}` appears twice");
            }
            if !matches!(var.dtype(), DType::F32 | DType::BF16 | DType::F16) {
                bail!(
                    "AdamW: parameter `{name}` has dtype {:?}; f32, bf16 or f16 expected",
                    var.dtype()
                );
            }
            let master = match path {
                StepPath::Generic => Vec::new(),
                StepPath::Host => match host_grad(var.as_tensor())? {
                    HostGrad::Owned(v) => v,
                    borrowed => borrowed.view().to_f32_vec(),
                },
            };
            let n = master.len();
            slots.push(ParamSlot {
                name,
                var,
                master,
                exp_avg: vec![0.0; n],
                exp_avg_sq: vec![0.0; n],
                step: 0,
            });
        }
        let device = match path {
            StepPath::Host => None,
            StepPath::Generic => {
                let vars: Vec<&Var> = slots.iter().map(|s| &s.var).collect();
                Some(DeviceAdamW::new(&vars).context("AdamW: device state")?)
            }
        };
        Ok(Self {
            cfg,
            slots,
            steps: 0,
            device,
        })
    }

    /// Which path this optimiser runs.
    pub fn path(&self) -> StepPath {
        if self.device.is_some() {
            StepPath::Generic
        } else {
            StepPath::Host
        }
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Optimiser steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// Total number of optimised scalars.
    pub fn num_params(&self) -> usize {
        self.slots.iter().map(|s| s.var.elem_count()).sum()
    }

    /// An empty accumulator for this optimiser's parameters, on the optimiser's path.
    pub fn accumulator(&self) -> GradAccumulator {
        let params = self
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.var.clone()))
            .collect();
        // The parameters already formed this optimiser's flat layout, so this cannot fail.
        GradAccumulator::with_path(params, self.path())
            .expect("the optimiser's parameters form a flat layout")
    }

    /// One step from the gradients of a single backward pass.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepStats> {
        if let Some(dev) = &self.device {
            let mut sums = DeviceGrads::new(dev.layout.clone());
            let params = self.slots.iter().map(|s| (s.name.as_str(), &s.var));
            sums.add_store(params, grads, 1.0)
                .map_err(|e| anyhow::anyhow!("AdamW: {e:#}"))?;
            return self.step_device(&sums, lr);
        }
        let held: Vec<Option<HostGrad>> = self
            .slots
            .iter()
            .map(|s| grads.get(s.var.as_tensor()).map(host_grad).transpose())
            .collect::<Result<_>>()?;
        let views: Vec<Option<GradView>> = held
            .iter()
            .map(|h| h.as_ref().map(HostGrad::view))
            .collect();
        self.step_views(&views, lr)
    }

    /// One step from gradients summed over micro-batches.
    pub fn step_accumulated(&mut self, acc: &GradAccumulator, lr: f64) -> Result<StepStats> {
        acc.check_matches(self.slots.iter().map(|s| (&s.name, &s.var)))?;
        if acc.path() != self.path() {
            bail!(
                "AdamW on the {} path cannot step from an accumulator on the {} path",
                self.path().name(),
                acc.path().name()
            );
        }
        if let Some(sums) = acc.device_grads() {
            return self.step_device(sums, lr);
        }
        let views: Vec<Option<GradView>> = acc
            .views()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.map(GradView::F32))
            .collect();
        self.step_views(&views, lr)
    }

    /// The device-generic step from a flat f32 gradient `sum` in this optimiser's layout
    /// (`GradAccumulator::flat_sum`'s buffer, e.g. after a sum over ranks) where `present[i]`
    /// says whether parameter `i` has a gradient.
    pub fn step_flat(&mut self, sum: Tensor, present: Vec<bool>, lr: f64) -> Result<StepStats> {
        let Some(dev) = &self.device else {
            bail!("AdamW: a flat gradient step needs the device-generic path");
        };
        if present.len() != self.slots.len() || sum.elem_count() != dev.layout.total.max(1) {
            bail!(
                "AdamW: a flat gradient of {} values for {} parameters; the layout has {} \
                 values for {}",
                sum.elem_count(),
                present.len(),
                dev.layout.total.max(1),
                self.slots.len()
            );
        }
        let grads = DeviceGrads {
            layout: dev.layout.clone(),
            sum: Some(sum),
            present,
        };
        self.step_device(&grads, lr)
    }

    /// The step over flat f32 host gradients, one per parameter (`None` = no gradient).
    pub fn step_host(&mut self, grads: &[Option<&[f32]>], lr: f64) -> Result<StepStats> {
        if let Some(dev) = &self.device {
            if grads.len() != self.slots.len() {
                bail!(
                    "AdamW: {} gradients for {} parameters",
                    grads.len(),
                    self.slots.len()
                );
            }
            let mut sums = DeviceGrads::new(dev.layout.clone());
            for (i, (slot, g)) in self.slots.iter().zip(grads).enumerate() {
                if let Some(g) = g {
                    let t = Tensor::from_slice(g, g.len(), &dev.layout.device)?;
                    sums.add(i, &slot.name, &t, 1.0)
                        .map_err(|e| anyhow::anyhow!("AdamW: {e:#}"))?;
                }
            }
            return self.step_device(&sums, lr);
        }
        let views: Vec<Option<GradView>> = grads.iter().map(|g| g.map(GradView::F32)).collect();
        self.step_views(&views, lr)
    }

    fn step_views(&mut self, grads: &[Option<GradView>], lr: f64) -> Result<StepStats> {
        if grads.len() != self.slots.len() {
            bail!(
                "AdamW: {} gradients for {} parameters",
                grads.len(),
                self.slots.len()
            );
        }
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("AdamW: learning rate {lr} must be finite and >= 0");
        }
        let grad_norm = self.global_grad_norm(grads)?;
        let clip_coef = match self.cfg.max_grad_norm {
            Some(max) => (max / (grad_norm + CLIP_EPS)).min(1.0),
            None => 1.0,
        };
        let hyper = Hyper::new(&self.cfg, lr, clip_coef);
        self.slots
            .par_iter_mut()
            .zip(grads.par_iter())
            .filter_map(|(slot, g)| g.map(|g| (slot, g)))
            .for_each(|(slot, g)| {
                slot.step += 1;
                let t = hyper.at_step(slot.step);
                match g {
                    GradView::F32(g) => t.update_all(slot, g),
                    GradView::BF16(g) => t.update_all(slot, g),
                    GradView::F16(g) => t.update_all(slot, g),
                }
            });
        for (slot, g) in self.slots.iter().zip(grads) {
            if g.is_some() {
                write_param(&slot.var, &slot.master)
                    .with_context(|| format!("AdamW: writing parameter `{}`", slot.name))?;
            }
        }
        self.steps += 1;
        Ok(StepStats {
            grad_norm,
            clip_coef,
            step: self.steps,
        })
    }

    /// The device-generic step: norm, clipping, the bucketed update and the write-back, all
    /// in tensor ops on the parameters' device.
    fn step_device(&mut self, grads: &DeviceGrads, lr: f64) -> Result<StepStats> {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("AdamW: learning rate {lr} must be finite and >= 0");
        }
        let dev = self
            .device
            .as_mut()
            .expect("step_device runs on the device path");
        let names: Vec<&str> = self.slots.iter().map(|s| s.name.as_str()).collect();
        let grad_norm = dev.grad_norm(grads, &names)?;
        let clip = clip_coef(&self.cfg, grad_norm);
        let steps: Vec<u64> = self
            .slots
            .iter()
            .zip(&grads.present)
            .map(|(s, &p)| s.step + p as u64)
            .collect();
        dev.update(grads, &steps, &self.cfg, lr, clip)?;
        for (slot, step) in self.slots.iter_mut().zip(steps) {
            slot.step = step;
        }
        let params = self.slots.iter().map(|s| (s.name.as_str(), &s.var));
        dev.write_back(params, &grads.present)?;
        self.steps += 1;
        Ok(StepStats {
            grad_norm,
            clip_coef: clip,
            step: self.steps,
        })
    }

    /// Global L2 norm (f64 accumulation); fails naming the first parameter whose gradient is
    /// not finite or has the wrong length.
    fn global_grad_norm(&self, grads: &[Option<GradView>]) -> Result<f64> {
        let sums: Vec<f64> = grads
            .par_iter()
            .map(|g| g.map_or(0.0, |g| g.sum_sq()))
            .collect();
        for ((slot, g), s) in self.slots.iter().zip(grads).zip(&sums) {
            if let Some(g) = g {
                if g.len() != slot.master.len() {
                    bail!(
                        "AdamW: gradient of `{}` has {} values, the parameter {}",
                        slot.name,
                        g.len(),
                        slot.master.len()
                    );
                }
            }
            if !s.is_finite() {
                bail!(
                    "AdamW: non-finite gradient in parameter `{}`; step refused",
                    slot.name
                );
            }
        }
        Ok(sums.iter().sum::<f64>().sqrt())
    }
}

/// Scalars shared by every parameter in a step.
struct Hyper {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f32,
    decay_scale: f32,
    clip_coef: f32,
    clipping: bool,
}

/// Scalars of one parameter's update, in the precision torch applies them (f32).
struct StepScalars {
    decay_scale: f32,
    one_minus_b1: f32,
    beta2: f32,
    one_minus_b2: f32,
    neg_step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    clip_coef: f32,
    clipping: bool,
}

impl Hyper {
    fn new(cfg: &AdamWConfig, lr: f64, clip_coef: f64) -> Self {
        Self {
            lr,
            beta1: cfg.betas.0,
            beta2: cfg.betas.1,
            eps: cfg.eps as f32,
            decay_scale: (1.0 - lr * cfg.weight_decay) as f32,
            clip_coef: clip_coef as f32,
            clipping: clip_coef < 1.0,
        }
    }

    /// Bias corrections are computed in f64 from the parameter's own step count, as torch does.
    fn at_step(&self, step: u64) -> StepScalars {
        let bc1 = 1.0 - self.beta1.powf(step as f64);
        let bc2 = 1.0 - self.beta2.powf(step as f64);
        StepScalars {
            decay_scale: self.decay_scale,
            one_minus_b1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_b2: (1.0 - self.beta2) as f32,
            neg_step_size: (-(self.lr / bc1)) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: self.eps,
            clip_coef: self.clip_coef,
            clipping: self.clipping,
        }
    }
}

impl StepScalars {
    /// Updates one parameter's master weights and moments, chunk-parallel.
    fn update_all<G: Copy + Into<f32> + Sync>(&self, slot: &mut ParamSlot, g: &[G]) {
        slot.master
            .par_chunks_mut(CHUNK)
            .zip(slot.exp_avg.par_chunks_mut(CHUNK))
            .zip(slot.exp_avg_sq.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| self.update(p, m, v, g));
    }

    #[inline]
    fn update<G: Copy + Into<f32>>(&self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[G]) {
        for i in 0..p.len() {
            let g = if self.clipping {
                g[i].into() * self.clip_coef
            } else {
                g[i].into()
            };
            let p_i = p[i] * self.decay_scale;
            let m_i = m[i] + self.one_minus_b1 * (g - m[i]);
            let v_i = v[i] * self.beta2 + self.one_minus_b2 * g * g;
            let denom = v_i.sqrt() / self.bc2_sqrt + self.eps;
            p[i] = p_i + self.neg_step_size * (m_i / denom);
            m[i] = m_i;
            v[i] = v_i;
        }
    }
}
