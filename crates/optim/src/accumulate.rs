//! Gradient accumulation across micro-batches: sums each backward pass's gradients into f32
//! buffers, one per parameter, so the optimiser can step once per mini-batch. The losses of the
//! micro-batches must already carry their share of the mini-batch normalisation (see
//! `agg::AggScope`), so a plain sum is the mini-batch gradient.
//!
//! On the host path the sums are host f32 buffers; on the device-generic path they are one
//! flat f32 buffer on the parameters' device (`crate::device`), summed with tensor ops.

use anyhow::{bail, Result};
use candle_core::{backprop::GradStore, Var};
use oneshot_kernels::device_path::{self, StepPath};

use crate::device::{DeviceGrads, FlatLayout};
use crate::host::host_grad;

pub struct GradAccumulator {
    params: Vec<(String, Var)>,
    sums: Sums,
    passes: usize,
}

enum Sums {
    /// Summed gradient per parameter; `None` until one backward pass produced one.
    Host(Vec<Option<Vec<f32>>>),
    Device(DeviceGrads),
}

impl GradAccumulator {
    /// An accumulator on the path `oneshot_kernels::device_path` picks for the parameters'
    /// device.
    pub fn new(params: Vec<(String, Var)>) -> Result<Self> {
        let path = match params.first() {
            Some((_, v)) => device_path::step_path(v.device())?,
            None => StepPath::Host,
        };
        Self::with_path(params, path)
    }

    /// An accumulator on the given path.
    pub fn with_path(params: Vec<(String, Var)>, path: StepPath) -> Result<Self> {
        let sums = match path {
            StepPath::Host => Sums::Host(vec![None; params.len()]),
            StepPath::Generic => {
                let vars: Vec<&Var> = params.iter().map(|(_, v)| v).collect();
                Sums::Device(DeviceGrads::new(FlatLayout::new(&vars)?))
            }
        };
        Ok(Self {
            params,
            sums,
            passes: 0,
        })
    }

    pub fn path(&self) -> StepPath {
        match self.sums {
            Sums::Host(_) => StepPath::Host,
            Sums::Device(_) => StepPath::Generic,
        }
    }

    /// Adds the gradients of one backward pass.
    pub fn add(&mut self, grads: &GradStore) -> Result<()> {
        self.add_scaled(grads, 1.0)
    }

    /// Adds `scale` times the gradients of one backward pass.
    pub fn add_scaled(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        let sums = match &mut self.sums {
            Sums::Device(d) => {
                let params = self.params.iter().map(|(n, v)| (n.as_str(), v));
                d.add_store(params, grads, scale)
                    .map_err(|e| anyhow::anyhow!("GradAccumulator: {e:#}"))?;
                self.passes += 1;
                return Ok(());
            }
            Sums::Host(sums) => sums,
        };
        for ((name, var), sum) in self.params.iter().zip(sums.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let held = host_grad(g)?;
            let g = held.view();
            if g.len() != var.elem_count() {
                bail!(
                    "GradAccumulator: gradient of `{name}` has {} values, the parameter {}",
                    g.len(),
                    var.elem_count()
                );
            }
            match sum {
                None => {
                    let mut buf = vec![0f32; g.len()];
                    g.add_into(&mut buf, scale, true);
                    *sum = Some(buf);
                }
                Some(acc) => g.add_into(acc, scale, false),
            }
        }
        self.passes += 1;
        Ok(())
    }

    /// Backward passes added since the last `clear`.
    pub fn passes(&self) -> usize {
        self.passes
    }

    /// A host copy of the summed gradient of a parameter, if any pass produced one.
    pub fn grad(&self, name: &str) -> Result<Option<Vec<f32>>> {
        let Some(i) = self.params.iter().position(|(n, _)| n == name) else {
            return Ok(None);
        };
        match &self.sums {
            Sums::Host(sums) => Ok(sums[i].clone()),
            Sums::Device(d) => match (&d.sum, d.present[i]) {
                (Some(sum), true) => Ok(Some(d.layout.to_host(sum, i)?)),
                _ => Ok(None),
            },
        }
    }

    /// The number of values of a parameter (its gradient's length), if it is one of these.
    pub fn param_len(&self, name: &str) -> Option<usize> {
        let (_, var) = self.params.iter().find(|(n, _)| n == name)?;
        Some(var.elem_count())
    }

    /// Forgets the sums (keeps the buffers' parameters).
    pub fn clear(&mut self) {
        match &mut self.sums {
            Sums::Host(sums) => sums.iter_mut().for_each(|s| *s = None),
            Sums::Device(d) => d.clear(),
        }
        self.passes = 0;
    }

    /// The host sums, or `None` on the device path.
    pub(crate) fn views(&self) -> Option<Vec<Option<&[f32]>>> {
        match &self.sums {
            Sums::Host(sums) => Some(sums.iter().map(|s| s.as_deref()).collect()),
            Sums::Device(_) => None,
        }
    }

    /// On the device-generic path, the flat f32 gradient sum in the parameters' layout (zeros
    /// where no pass added a gradient; a fresh zero buffer before any pass) and which
    /// parameters have a gradient; `None` on the host path. A data-parallel run sums this
    /// buffer over ranks where it lives, so the accumulator then holds the global sum.
    pub fn flat_sum(&self) -> Result<Option<(candle_core::Tensor, Vec<bool>)>> {
        let Sums::Device(d) = &self.sums else {
            return Ok(None);
        };
        let sum = match &d.sum {
            Some(s) => s.clone(),
            None => candle_core::Tensor::zeros(
                d.layout.total.max(1),
                candle_core::DType::F32,
                &d.layout.device,
            )?,
        };
        Ok(Some((sum, d.present.clone())))
    }

    /// The device sums, or `None` on the host path.
    pub(crate) fn device_grads(&self) -> Option<&DeviceGrads> {
        match &self.sums {
            Sums::Device(d) => Some(d),
            Sums::Host(_) => None,
        }
    }

    /// Fails unless this accumulator was made for exactly these parameters, in this order.
    pub(crate) fn check_matches<'a>(
        &self,
        params: impl Iterator<Item = (&'a String, &'a Var)>,
    ) -> Result<()> {
        let mut count = 0;
        for (i, (name, var)) in params.enumerate() {
            match self.params.get(i) {
                Some((n, v)) if n == name && v.as_tensor().id() == var.as_tensor().id() => {}
                _ => bail!(
                    "GradAccumulator does not belong to this optimiser (parameter {i} `{name}`)"
                ),
            }
            count += 1;
        }
        if count != self.params.len() {
            bail!(
                "GradAccumulator has {} parameters, the optimiser {count}",
                self.params.len()
            );
        }
        Ok(())
    }
}
