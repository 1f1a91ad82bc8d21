//! Gradient accumulation across micro-batches: sums each backward pass's gradients into f32
//! buffers, one per parameter, so the optimiser can step once per mini-batch. The losses of the
//! micro-batches must already carry their share of the mini-batch normalisation (see
//! `agg::AggScope`), so a plain sum is the mini-batch gradient.

use anyhow::{bail, Result};
use candle_core::{backprop::GradStore, Var};

use crate::host::host_grad;

pub struct GradAccumulator {
    params: Vec<(String, Var)>,
    /// Summed gradient per parameter; `None` until one backward pass produced one.
    sums: Vec<Option<Vec<f32>>>,
    passes: usize,
}

impl GradAccumulator {
    pub fn new(params: Vec<(String, Var)>) -> Self {
        let sums = vec![None; params.len()];
        Self {
            params,
            sums,
            passes: 0,
        }
    }

    /// Adds the gradients of one backward pass.
    pub fn add(&mut self, grads: &GradStore) -> Result<()> {
        self.add_scaled(grads, 1.0)
    }

    /// Adds `scale` times the gradients of one backward pass.
    pub fn add_scaled(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        for ((name, var), sum) in self.params.iter().zip(self.sums.iter_mut()) {
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

    /// The summed gradient of a parameter, if any pass produced one.
    pub fn grad(&self, name: &str) -> Option<&[f32]> {
        let i = self.params.iter().position(|(n, _)| n == name)?;
        self.sums[i].as_deref()
    }

    /// Forgets the sums (keeps the buffers' parameters).
    pub fn clear(&mut self) {
        self.sums.iter_mut().for_each(|s| *s = None);
        self.passes = 0;
    }

    pub(crate) fn views(&self) -> Vec<Option<&[f32]>> {
        self.sums.iter().map(|s| s.as_deref()).collect()
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
