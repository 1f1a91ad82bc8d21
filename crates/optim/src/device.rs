//! The device-generic optimiser path: AdamW and gradient accumulation in candle tensor ops on
//! the parameters' own device, so a step moves no parameter, gradient or moment through the
//! host (only one f64 per parameter, its gradient's sum of squares, comes back for the global
//! norm and the non-finite check).
//!
//! Every parameter owns a range of one flat f32 buffer per quantity (master weights, first and
//! second moments, summed gradients), in the optimiser's parameter order: a data-parallel run
//! can all-reduce the gradient buffer whole. The update walks the buffers in buckets of at most
//! [`BUCKET`] elements, each bucket one sequence of element-wise tensor ops written back in
//! place, so temporaries stay bounded by the bucket and not the model.
//!
//! The arithmetic is the host path's, operation for operation in f32 (`crate::adamw`), so on
//! the CPU both paths give the same parameters.

use anyhow::{bail, Context, Result};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};

use crate::adamw::{AdamWConfig, CLIP_EPS};

/// Elements per bucket of the update pass (64 MiB of f32).
pub(crate) const BUCKET: usize = 1 << 24;

/// Where each parameter lives in the flat buffers.
#[derive(Debug, Clone)]
pub(crate) struct FlatLayout {
    /// (offset, length) per parameter.
    pub ranges: Vec<(usize, usize)>,
    pub total: usize,
    pub device: Device,
}

impl FlatLayout {
    pub fn new(vars: &[&Var]) -> Result<Self> {
        let Some(first) = vars.first() else {
            return Ok(Self {
                ranges: Vec::new(),
                total: 0,
                device: Device::Cpu,
            });
        };
        let device = first.device().clone();
        let mut ranges = Vec::with_capacity(vars.len());
        let mut total = 0;
        for v in vars {
            if !v.device().same_device(&device) {
                bail!("the device-generic optimiser needs every parameter on one device");
            }
            ranges.push((total, v.elem_count()));
            total += v.elem_count();
        }
        Ok(Self {
            ranges,
            total,
            device,
        })
    }

    /// The parameters' values as one flat f32 buffer.
    pub fn gather(&self, vars: &[&Var]) -> Result<Tensor> {
        let buf = Tensor::zeros(self.total.max(1), DType::F32, &self.device)?;
        for (v, &(off, _)) in vars.iter().zip(&self.ranges) {
            let flat = v
                .as_tensor()
                .to_dtype(DType::F32)?
                .flatten_all()?
                .contiguous()?;
            buf.slice_set(&flat, 0, off)?;
        }
        Ok(buf)
    }

    /// Copies the values of parameter `i` out of a flat buffer into its `Var` (rounded to the
    /// parameter's dtype).
    pub fn scatter_one(&self, buf: &Tensor, i: usize, var: &Var) -> Result<()> {
        let (off, n) = self.ranges[i];
        let piece = buf.narrow(0, off, n)?.reshape(var.shape())?;
        var.set(&piece.to_dtype(var.dtype())?.contiguous()?)?;
        Ok(())
    }

    /// Parameter `i`'s range of a flat buffer, copied to the host.
    pub fn to_host(&self, buf: &Tensor, i: usize) -> Result<Vec<f32>> {
        let (off, n) = self.ranges[i];
        Ok(buf.narrow(0, off, n)?.to_vec1::<f32>()?)
    }

    /// A flat buffer on the device from per-parameter host values.
    pub fn upload(&self, values: &[&[f32]]) -> Result<Tensor> {
        let buf = Tensor::zeros(self.total.max(1), DType::F32, &self.device)?;
        for (v, &(off, n)) in values.iter().zip(&self.ranges) {
            if v.len() != n {
                bail!("{} values for a parameter of {n}", v.len());
            }
            buf.slice_set(&Tensor::from_slice(v, n, &self.device)?, 0, off)?;
        }
        Ok(buf)
    }
}

/// Gradients summed into one flat f32 buffer on the device.
pub(crate) struct DeviceGrads {
    pub layout: FlatLayout,
    /// Allocated at the first gradient.
    pub sum: Option<Tensor>,
    /// Which parameters received a gradient.
    pub present: Vec<bool>,
}

impl DeviceGrads {
    pub fn new(layout: FlatLayout) -> Self {
        let present = vec![false; layout.ranges.len()];
        Self {
            layout,
            sum: None,
            present,
        }
    }

    /// `sum[i] = scale * g` for a first gradient of parameter `i`, `sum[i] += scale * g` after,
    /// in the host path's f32 arithmetic.
    pub fn add(&mut self, i: usize, name: &str, g: &Tensor, scale: f32) -> Result<()> {
        let (off, n) = self.layout.ranges[i];
        if g.elem_count() != n {
            bail!(
                "gradient of `{name}` has {} values, the parameter {n}",
                g.elem_count()
            );
        }
        let g = g
            .to_device(&self.layout.device)?
            .to_dtype(DType::F32)?
            .flatten_all()?;
        let scaled = g.affine(scale as f64, 0.0)?;
        let sum = match &self.sum {
            Some(s) => s.clone(),
            None => {
                let s = Tensor::zeros(self.layout.total.max(1), DType::F32, &self.layout.device)?;
                self.sum = Some(s.clone());
                s
            }
        };
        let new = if self.present[i] {
            (sum.narrow(0, off, n)? + scaled)?
        } else {
            scaled
        };
        sum.slice_set(&new.contiguous()?, 0, off)?;
        self.present[i] = true;
        Ok(())
    }

    /// Adds every gradient `grads` holds for `params` (named, in layout order).
    pub fn add_store<'a>(
        &mut self,
        params: impl Iterator<Item = (&'a str, &'a Var)>,
        grads: &GradStore,
        scale: f32,
    ) -> Result<()> {
        for (i, (name, var)) in params.enumerate() {
            if let Some(g) = grads.get(var.as_tensor()) {
                self.add(i, name, g, scale)?;
            }
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.sum = None;
        self.present.iter_mut().for_each(|p| *p = false);
    }
}

/// AdamW state on the device: flat f32 master weights and moments.
pub(crate) struct DeviceAdamW {
    pub layout: FlatLayout,
    pub master: Tensor,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

/// The f32 scalars of one bucket's update, computed as the host path computes them.
struct Scalars {
    clip: Option<f32>,
    decay_scale: f32,
    one_minus_b1: f32,
    beta2: f32,
    one_minus_b2: f32,
    neg_step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

impl Scalars {
    fn new(cfg: &AdamWConfig, lr: f64, clip_coef: f64, step: u64) -> Self {
        let (b1, b2) = cfg.betas;
        let bc1 = 1.0 - b1.powf(step as f64);
        let bc2 = 1.0 - b2.powf(step as f64);
        Self {
            clip: (clip_coef < 1.0).then_some(clip_coef as f32),
            decay_scale: (1.0 - lr * cfg.weight_decay) as f32,
            one_minus_b1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_b2: (1.0 - b2) as f32,
            neg_step_size: (-(lr / bc1)) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: cfg.eps as f32,
        }
    }
}

impl DeviceAdamW {
    pub fn new(vars: &[&Var]) -> Result<Self> {
        let layout = FlatLayout::new(vars)?;
        let master = layout.gather(vars)?;
        let exp_avg = master.zeros_like()?;
        let exp_avg_sq = master.zeros_like()?;
        Ok(Self {
            layout,
            master,
            exp_avg,
            exp_avg_sq,
        })
    }

    /// Sum of squares (f64) of each present parameter's gradient; fails naming the first
    /// parameter whose gradient is not finite.
    pub fn grad_norm(&self, grads: &DeviceGrads, names: &[&str]) -> Result<f64> {
        let Some(sum) = &grads.sum else {
            return Ok(0.0);
        };
        let mut parts = Vec::new();
        let mut which = Vec::new();
        for (i, &(off, n)) in self.layout.ranges.iter().enumerate() {
            if grads.present[i] {
                let g = sum.narrow(0, off, n)?.to_dtype(DType::F64)?;
                parts.push(g.sqr()?.sum_all()?);
                which.push(i);
            }
        }
        if parts.is_empty() {
            return Ok(0.0);
        }
        let sums = Tensor::stack(&parts, 0)?.to_vec1::<f64>()?;
        for (&i, s) in which.iter().zip(&sums) {
            if !s.is_finite() {
                bail!(
                    "AdamW: non-finite gradient in parameter `{}`; step refused",
                    names[i]
                );
            }
        }
        Ok(sums.iter().sum::<f64>().sqrt())
    }

    /// One update of every present parameter. `steps[i]` is parameter i's step count after
    /// this step (bias corrections are per parameter, as in torch); runs of consecutive
    /// parameters with the same count are updated together, bucket by bucket.
    pub fn update(
        &mut self,
        grads: &DeviceGrads,
        steps: &[u64],
        cfg: &AdamWConfig,
        lr: f64,
        clip_coef: f64,
    ) -> Result<()> {
        let Some(g) = &grads.sum else {
            return Ok(());
        };
        let mut i = 0;
        let n = self.layout.ranges.len();
        while i < n {
            if !grads.present[i] {
                i += 1;
                continue;
            }
            let start = self.layout.ranges[i].0;
            let mut j = i;
            while j + 1 < n && grads.present[j + 1] && steps[j + 1] == steps[i] {
                j += 1;
            }
            let (last_off, last_n) = self.layout.ranges[j];
            let sc = Scalars::new(cfg, lr, clip_coef, steps[i]);
            let end = last_off + last_n;
            let mut off = start;
            while off < end {
                let len = BUCKET.min(end - off);
                self.update_bucket(g, off, len, &sc)?;
                off += len;
            }
            i = j + 1;
        }
        Ok(())
    }

    fn update_bucket(&self, g: &Tensor, off: usize, len: usize, sc: &Scalars) -> Result<()> {
        let dev = &self.layout.device;
        let g = g.narrow(0, off, len)?;
        let g = match sc.clip {
            Some(c) => g.affine(c as f64, 0.0)?,
            None => g,
        };
        let p = self.master.narrow(0, off, len)?;
        let m = self.exp_avg.narrow(0, off, len)?;
        let v = self.exp_avg_sq.narrow(0, off, len)?;
        let p_new = p.affine(sc.decay_scale as f64, 0.0)?;
        let m_new = (&m + (&g - &m)?.affine(sc.one_minus_b1 as f64, 0.0)?)?;
        let v_new =
            (v.affine(sc.beta2 as f64, 0.0)? + (g.affine(sc.one_minus_b2 as f64, 0.0)? * &g)?)?;
        let bc2_sqrt = Tensor::new(&[sc.bc2_sqrt], dev)?;
        let denom = (v_new.sqrt()?.broadcast_div(&bc2_sqrt)? + sc.eps as f64)?;
        let p_new = (p_new + (&m_new / denom)?.affine(sc.neg_step_size as f64, 0.0)?)?;
        self.master.slice_set(&p_new, 0, off)?;
        self.exp_avg.slice_set(&m_new, 0, off)?;
        self.exp_avg_sq.slice_set(&v_new, 0, off)?;
        Ok(())
    }

    /// Writes the master weights of the present parameters into their `Var`s.
    pub fn write_back<'a>(
        &self,
        params: impl Iterator<Item = (&'a str, &'a Var)>,
        present: &[bool],
    ) -> Result<()> {
        for (i, (name, var)) in params.enumerate() {
            if present[i] {
                self.layout
                    .scatter_one(&self.master, i, var)
                    .with_context(|| format!("AdamW: writing parameter `{name}`"))?;
            }
        }
        Ok(())
    }
}

/// torch's clipping coefficient for a global norm (1 when not clipping).
pub(crate) fn clip_coef(cfg: &AdamWConfig, grad_norm: f64) -> f64 {
    match cfg.max_grad_norm {
        Some(max) => (max / (grad_norm + CLIP_EPS)).min(1.0),
        None => 1.0,
    }
}
