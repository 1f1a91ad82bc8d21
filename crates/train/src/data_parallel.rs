//! Data parallelism inside the step: each rank trains on its slice of the batch's prompt rows
//! (`prompts::rank_rows`), and these helpers make the result the single-process one: the
//! per-response outcomes are gathered so every rank keeps the same reward statistics, HAPO
//! history and selection history; the loss normaliser (tokens, sequences, micro-batches) is
//! the global batch's; gradients are summed over ranks before the optimiser steps. In a world
//! of one every helper is the single-process code path.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use oneshot_dist::{all_reduce_buckets, broadcast_f32, Collective, World};
use oneshot_optim::{AdamW, GradAccumulator, StepStats};
use oneshot_rl::AggScope;

use crate::config::TrainConfig;
use crate::metrics::LengthStats;
use crate::state::RunState;

/// A clear error when the batch does not split evenly over the ranks.
pub fn check_world(cfg: &TrainConfig, world: World) -> Result<()> {
    let w = world.size;
    let (batch, mini) = (cfg.data.train_batch_size, cfg.trainer.mini_batch_size);
    if batch % w != 0 {
        bail!(
            "data.train_batch_size = {batch} does not divide over {w} ranks (each rank takes \
             train_batch_size / world prompt rows); pick a multiple of {w}"
        );
    }
    if mini % w != 0 {
        bail!("trainer.mini_batch_size = {mini} does not divide over {w} ranks");
    }
    Ok(())
}

/// Logs the batch rows a rank took, as one line written at once (so ranks' lines interleave
/// whole under a launcher): `rank R step S: batch rows A..B = [prompt indices]`.
pub fn log_rows(rank: usize, step: usize, first: usize, rows: &[usize]) {
    use std::io::Write;
    let end = first + rows.len();
    let line = format!("rank {rank} step {step}: batch rows {first}..{end} = {rows:?}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// What one response of the batch came to, as every rank needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The example's `extra_info.index`.
    pub index: i64,
    pub len_tokens: usize,
    pub prompt_tokens: usize,
    pub correct: bool,
    pub truncated: bool,
    pub total: f64,
    pub format: f64,
    pub length: f64,
}

const OUTCOME_BYTES: usize = 8 * 6 + 2;

impl Outcome {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.index.to_le_bytes());
        out.extend((self.len_tokens as u64).to_le_bytes());
        out.extend((self.prompt_tokens as u64).to_le_bytes());
        out.push(self.correct as u8);
        out.push(self.truncated as u8);
        for v in [self.total, self.format, self.length] {
            out.extend(v.to_le_bytes());
        }
    }

    fn read(b: &[u8]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            w
        };
        Self {
            index: i64::from_le_bytes(word(0)),
            len_tokens: u64::from_le_bytes(word(8)) as usize,
            prompt_tokens: u64::from_le_bytes(word(16)) as usize,
            correct: b[24] != 0,
            truncated: b[25] != 0,
            total: f64::from_le_bytes(word(26)),
            format: f64::from_le_bytes(word(34)),
            length: f64::from_le_bytes(word(42)),
        }
    }
}

/// Every rank's outcomes, in global batch order (rank 0's rows first, as one process).
pub fn gather_outcomes(c: &dyn Collective, mine: &[Outcome]) -> Result<Vec<Outcome>> {
    if c.world().size == 1 {
        return Ok(mine.to_vec());
    }
    let mut bytes = Vec::with_capacity(mine.len() * OUTCOME_BYTES);
    mine.iter().for_each(|o| o.write(&mut bytes));
    let mut all = Vec::new();
    for (rank, part) in c.all_gather(&bytes)?.iter().enumerate() {
        if part.len() % OUTCOME_BYTES != 0 {
            bail!("rank {rank} sent {} bytes of outcomes", part.len());
        }
        all.extend(part.chunks_exact(OUTCOME_BYTES).map(Outcome::read));
    }
    Ok(all)
}

/// Folds the whole batch's outcomes into the run state (HAPO's shortest correct lengths and
/// the selection history), identically on every rank. `first_row` is the batch's position
/// in the data order; `batch` its prompt rows; `n_rows` the data's rows.
pub fn record_outcomes(
    state: &mut RunState,
    all: &[Outcome],
    hapo_on: bool,
    first_row: usize,
    batch: usize,
    n_rows: usize,
) {
    if hapo_on {
        let keys: Vec<String> = all.iter().map(|o| o.index.to_string()).collect();
        let samples: Vec<oneshot_rl::hapo::LengthSample> = all
            .iter()
            .zip(&keys)
            .map(|(o, k)| oneshot_rl::hapo::LengthSample {
                problem: k,
                len: o.len_tokens,
                correct: o.correct,
            })
            .collect();
        state.hapo.score_batch(&samples);
    }
    let per_example: Vec<(i64, bool)> = all.iter().map(|o| (o.index, o.correct)).collect();
    state.record_outcomes(&per_example, first_row, batch, n_rows);
}

/// Response length statistics of the whole batch.
pub fn length_stats(all: &[Outcome]) -> LengthStats {
    let n = all.len().max(1) as f64;
    LengthStats {
        mean: all.iter().map(|o| o.len_tokens).sum::<usize>() as f64 / n,
        max: all.iter().map(|o| o.len_tokens).max().unwrap_or(0),
        min: all.iter().map(|o| o.len_tokens).min().unwrap_or(0),
        clip_ratio: all.iter().filter(|o| o.truncated).count() as f64 / n,
    }
}

/// Sums `values` over ranks in place (a no-op in a world of one).
pub fn sum_scalars(c: &dyn Collective, values: &mut [f64]) -> Result<()> {
    if c.world().size > 1 {
        c.all_reduce_f64(values)?;
    }
    Ok(())
}

/// The scope of a mini-batch whose rows are spread over the ranks: the normaliser counts
/// (tokens, sequences, micro-batches) are the global mini-batch's.
pub fn global_scope(c: &dyn Collective, local: AggScope) -> Result<AggScope> {
    if c.world().size == 1 {
        return Ok(local);
    }
    let mut v = [local.tokens, local.seqs, local.micro_batches as f64];
    c.all_reduce_f64(&mut v)?;
    Ok(AggScope {
        tokens: v[0],
        seqs: v[1],
        micro_batches: v[2].round() as usize,
        ..local
    })
}

/// How this rank cuts its training rows into mini-batches so that every rank runs the same
/// number of optimiser steps: as many as the global rows make (`mini_rows` global rows each),
/// each rank's rows split evenly over them. Without dropped groups each local mini-batch is
/// this rank's slice of the single-process one.
pub fn local_minibatches(
    c: &dyn Collective,
    train_rows: &[usize],
    mini_rows: usize,
) -> Result<Vec<Vec<usize>>> {
    if c.world().size == 1 {
        return Ok(train_rows
            .chunks(mini_rows)
            .map(<[usize]>::to_vec)
            .collect());
    }
    let mut total = [train_rows.len() as f64];
    c.all_reduce_f64(&mut total)?;
    let k = (total[0].round() as usize)
        .div_ceil(mini_rows.max(1))
        .max(1);
    let per = train_rows.len().div_ceil(k).max(1);
    let mut out: Vec<Vec<usize>> = train_rows.chunks(per).map(<[usize]>::to_vec).collect();
    out.resize(k, Vec::new());
    Ok(out)
}

/// One optimiser step on the gradients summed over ranks. A parameter without a gradient on
/// every rank gets the sum of those that have one. The summed gradient is the same on every
/// rank, so the ranks' weights stay equal.
pub fn step_synced(
    c: &dyn Collective,
    opt: &mut AdamW,
    acc: &GradAccumulator,
    lr: f64,
) -> Result<StepStats> {
    if c.world().size == 1 {
        return opt.step_accumulated(acc, lr);
    }
    #[cfg(feature = "cuda")]
    if let Some(nccl) = c.nccl() {
        if let Some((sum, present)) = acc.flat_sum()? {
            if matches!(sum.device(), candle_core::Device::Cuda(_)) {
                return step_on_device(c, nccl, opt, sum, present, lr);
            }
        }
    }
    let names: Vec<String> = opt.param_names().map(str::to_string).collect();
    let mut lens = Vec::with_capacity(names.len());
    let mut present = Vec::with_capacity(names.len());
    let mut flat = Vec::new();
    for name in &names {
        let g = acc.grad(name)?;
        present.push(g.is_some());
        let n = match &g {
            Some(g) => g.len(),
            None => opt_param_len(acc, name)?,
        };
        lens.push(n);
        match g {
            Some(g) => flat.extend(g),
            None => flat.resize(flat.len() + n, 0.0),
        }
    }
    let present = present_anywhere(c, &present)?;
    all_reduce_buckets(c, &mut flat)?;
    let mut grads: Vec<Option<&[f32]>> = Vec::with_capacity(names.len());
    let mut at = 0;
    for (n, p) in lens.iter().zip(&present) {
        grads.push(p.then(|| &flat[at..at + n]));
        at += n;
    }
    opt.step_host(&grads, lr)
}

/// Which parameters have a gradient on some rank, from this rank's flags (one small host sum).
fn present_anywhere(c: &dyn Collective, present: &[bool]) -> Result<Vec<bool>> {
    let mut counts: Vec<f64> = present.iter().map(|&p| p as u8 as f64).collect();
    c.all_reduce_f64(&mut counts)?;
    Ok(counts.iter().map(|&n| n > 0.0).collect())
}

/// The NCCL step on the device-generic path: the flat gradient sum is summed over ranks on
/// the GPU where it lives, bucket by bucket on candle's stream, with no host copy; a
/// parameter without a gradient on this rank contributes its zeros.
#[cfg(feature = "cuda")]
fn step_on_device(
    c: &dyn Collective,
    nccl: &oneshot_dist::nccl::Nccl,
    opt: &mut AdamW,
    sum: Tensor,
    present: Vec<bool>,
    lr: f64,
) -> Result<StepStats> {
    use candle_core::cuda_backend::cudarc::driver::DevicePtr;

    let present = present_anywhere(c, &present)?;
    {
        let candle_core::Device::Cuda(dev) = sum.device() else {
            bail!("the NCCL gradient sum needs the gradients on a CUDA device");
        };
        let (storage, layout) = sum.storage_and_layout();
        let candle_core::Storage::Cuda(cuda) = &*storage else {
            bail!("the flat gradient buffer is not in CUDA memory");
        };
        if sum.dtype() != DType::F32 || !layout.is_contiguous() {
            bail!("the flat gradient buffer must be contiguous f32");
        }
        let slice = cuda.as_cuda_slice::<f32>()?;
        let stream = dev.cuda_stream();
        let (base, _record) = slice.device_ptr(&stream);
        let buckets = oneshot_dist::bucket_addresses::<f32>(
            base,
            layout.start_offset(),
            sum.elem_count(),
            oneshot_dist::BUCKET_VALUES,
        );
        for (at, n) in buckets {
            // SAFETY: `at` addresses `n` f32 values inside the flat buffer, which the
            // accumulator owns and nothing else uses during the step; the sum runs on candle's
            // stream, after the kernels that wrote the buffer, and returns once it finished.
            unsafe { nccl.all_reduce_raw::<f32>(at, n, &stream) }
                .context("summing the gradients over NCCL")?;
        }
    }
    opt.step_flat(sum, present, lr)
}

fn opt_param_len(acc: &GradAccumulator, name: &str) -> Result<usize> {
    acc.param_len(name)
        .with_context(|| format!("no parameter `{name}` in the accumulator"))
}

/// Gives every rank rank 0's values of `vars` (the initial weights), so ranks start equal
/// even if their files or initialisations differ.
pub fn broadcast_vars(c: &dyn Collective, vars: &[(String, candle_core::Var)]) -> Result<()> {
    if c.world().size == 1 {
        return Ok(());
    }
    for (name, var) in vars {
        let t = var.as_tensor();
        let mut v: Vec<f32> = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        broadcast_f32(c, &mut v, 0).with_context(|| format!("broadcasting `{name}`"))?;
        let fresh = Tensor::from_vec(v, t.shape(), t.device())?.to_dtype(t.dtype())?;
        var.set(&fresh)?;
    }
    Ok(())
}

/// Gives every rank rank 0's run state (the resumed one, read by rank 0).
pub fn broadcast_state(c: &dyn Collective, state: &mut RunState) -> Result<()> {
    if c.world().size == 1 {
        return Ok(());
    }
    let mut bytes = serde_json::to_vec(state)?;
    c.broadcast(&mut bytes, 0)?;
    *state = serde_json::from_slice(&bytes).context("the run state rank 0 broadcast")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use oneshot_dist::Single;
    use oneshot_optim::{AdamWConfig, StepPath};

    fn vars() -> Vec<(String, Var)> {
        let a = Var::from_vec(vec![0.5f32, -1.0, 2.0, 0.25], (2, 2), &Device::Cpu).unwrap();
        let b = Var::from_vec(vec![3.0f32, -0.5, 1.5], 3, &Device::Cpu).unwrap();
        let c = Var::from_vec(vec![0.75f32, 0.125], 2, &Device::Cpu).unwrap();
        vec![("a".into(), a), ("b".into(), b), ("c".into(), c)]
    }

    fn values(vs: &[(String, Var)]) -> Vec<Vec<f32>> {
        vs.iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    /// The step the NCCL path takes (the accumulator's flat device buffer, summed where it
    /// lives, then `step_flat`) is the accumulated step on the same buffer, and a parameter
    /// without a gradient (`c`) is left as `step_accumulated` leaves it.
    #[test]
    fn a_flat_step_is_the_accumulated_step() {
        let cfg = AdamWConfig {
            lr: 0.1,
            ..AdamWConfig::default()
        };
        let (v1, v2) = (vars(), vars());
        let mut o1 = AdamW::with_path(v1.clone(), cfg, StepPath::Generic).unwrap();
        let mut o2 = AdamW::with_path(v2.clone(), cfg, StepPath::Generic).unwrap();
        let (mut acc1, mut acc2) = (o1.accumulator(), o2.accumulator());
        for _ in 0..2 {
            for (acc, vs) in [(&mut acc1, &v1), (&mut acc2, &v2)] {
                let sq = vs[0].1.as_tensor().sqr().unwrap().sum_all().unwrap();
                let lin = (vs[1].1.as_tensor() * 3.0).unwrap().sum_all().unwrap();
                let loss = (sq + lin).unwrap();
                acc.add_scaled(&loss.backward().unwrap(), 0.5).unwrap();
            }
        }
        let s1 = o1.step_accumulated(&acc1, 0.1).unwrap();
        let (sum, present) = acc2.flat_sum().unwrap().expect("the generic path");
        assert_eq!(sum.elem_count(), 9);
        assert_eq!(present, vec![true, true, false]);
        let present = present_anywhere(&Single, &present).unwrap();
        let s2 = o2.step_flat(sum, present, 0.1).unwrap();
        assert_eq!(s1.grad_norm, s2.grad_norm);
        assert_eq!(values(&v1), values(&v2));
        assert_ne!(values(&v1), values(&vars()), "the step moved the weights");
        assert_eq!(values(&v1)[2], values(&vars())[2], "no gradient for `c`");
    }

    #[test]
    fn a_flat_step_rejects_a_buffer_of_another_layout() {
        let mut opt = AdamW::with_path(vars(), AdamWConfig::default(), StepPath::Generic).unwrap();
        let short = Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap();
        let err = opt.step_flat(short, vec![true; 3], 0.1).unwrap_err();
        assert!(err.to_string().contains("8 values"), "{err}");
        let mut host = AdamW::with_path(vars(), AdamWConfig::default(), StepPath::Host).unwrap();
        let sum = Tensor::zeros(9, DType::F32, &Device::Cpu).unwrap();
        assert!(host.step_flat(sum, vec![true; 3], 0.1).is_err());
        assert!(host.accumulator().flat_sum().unwrap().is_none());
    }
}
