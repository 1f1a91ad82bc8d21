//! AdamW written with plain candle tensor ops (one op per formula term, moments as f32 tensors).
//! It is the unfused baseline of the `adamw` benchmark and an independent cross-check of the
//! fused optimiser in tests; training uses `AdamW`.

use anyhow::Result;
use candle_core::{backprop::GradStore, DType, Tensor, Var};

use crate::adamw::{AdamWConfig, StepStats, CLIP_EPS};

pub struct CandleOpsAdamW {
    cfg: AdamWConfig,
    params: Vec<(Var, Tensor, Tensor, Tensor)>, // var, f32 master, exp_avg, exp_avg_sq
    steps: u64,
}

impl CandleOpsAdamW {
    pub fn new(vars: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        cfg.validate()?;
        let params = vars
            .into_iter()
            .map(|v| {
                let master = v.as_tensor().to_dtype(DType::F32)?.detach();
                let zeros = master.zeros_like()?;
                Ok((v, master, zeros.clone(), zeros))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            cfg,
            params,
            steps: 0,
        })
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepStats> {
        let gs: Vec<Option<Tensor>> = self
            .params
            .iter()
            .map(|(v, ..)| {
                grads
                    .get(v.as_tensor())
                    .map(|g| g.to_dtype(DType::F32))
                    .transpose()
            })
            .collect::<candle_core::Result<_>>()?;
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
        let grad_norm = sq.sqrt();
        let clip_coef = self
            .cfg
            .max_grad_norm
            .map_or(1.0, |m| (m / (grad_norm + CLIP_EPS)).min(1.0));
        self.steps += 1;
        let t = self.steps as f64;
        let (b1, b2) = self.cfg.betas;
        let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
        for ((var, master, m, v), g) in self.params.iter_mut().zip(gs) {
            let Some(g) = g else { continue };
            let g = (g * clip_coef)?;
            let p = (&*master * (1.0 - lr * self.cfg.weight_decay))?;
            *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
            *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((v.sqrt()? / bc2.sqrt())? + self.cfg.eps)?;
            *master = (p - ((&*m / &denom)? * (lr / bc1))?)?;
            var.set(&master.to_dtype(var.dtype())?)?;
        }
        Ok(StepStats {
            grad_norm,
            clip_coef,
            step: self.steps,
        })
    }
}
