//! Sampling in candle tensor ops on the logits' own device: temperature, top-k, top-p and
//! greedy, one uniform draw per sequence (from the sequence's own seeded stream, drawn by the
//! caller), so only the chosen token ids and their log-probabilities cross to the host.
//!
//! The semantics are those of [`crate::sampling::sample`]: the log-probability is of the token
//! under `softmax(logits / T)` (truncation not folded in); the full-distribution draw is the
//! inverse CDF of `exp(z - max)` at `u * total`; top-k / top-p keep a prefix of the tokens in
//! descending order of logit and draw from it renormalised at `u * kept mass`. Sums are in
//! f64; the weights are f32 `exp` of the device (the host uses its own `exp`), so a token can
//! differ from the host's only when `u` falls within rounding of a boundary.
//!
//! The full draw walks block sums (blocks of [`BLOCK`] tokens: prefix sums over the blocks, then
//! within one block), never a running sum over the whole vocabulary. Top-k / top-p sort only
//! candidates: the [`PER_BLOCK`] best of each block, which hold the true top of the vocabulary
//! down to the best token left out; a row whose kept prefix reaches below that (rare: a
//! nucleus wider than the candidates) is finished on the host from its weights.

use candle_core::{DType, Result, Tensor};

use crate::sampling::SamplerConfig;

/// Tokens per block of the inverse-CDF walk and of the candidate search.
pub const BLOCK: usize = 512;
/// Candidates taken from each block for top-k / top-p.
pub const PER_BLOCK: usize = 16;

/// The chosen token of each row of `logits` (`[rows, vocab]`, any float dtype) and its
/// log-probability; `uniforms[r]` in [0, 1) is row r's draw.
pub fn sample_rows(
    logits: &Tensor,
    cfg: &SamplerConfig,
    uniforms: &[f64],
) -> Result<(Vec<u32>, Vec<f32>)> {
    let (rows, vocab) = logits.dims2()?;
    if uniforms.len() != rows {
        candle_core::bail!("sample_rows: {} draws for {rows} rows", uniforms.len());
    }
    let dev = logits.device();
    let inv_t = if cfg.is_greedy() {
        1.0
    } else {
        (1.0 / cfg.temperature) as f32
    };
    let lf = logits.to_dtype(DType::F32)?;
    let z = lf.affine(inv_t as f64, 0.0)?;
    let z_max = z.max_keepdim(1)?;
    let w = z.broadcast_sub(&z_max)?.exp()?.to_dtype(DType::F64)?;
    let total = w.sum_keepdim(1)?;
    let log_norm = (z_max.to_dtype(DType::F64)? + total.log()?)?;
    let u = Tensor::from_slice(uniforms, (rows, 1), dev)?;
    let tokens = if cfg.is_greedy() {
        lf.argmax_keepdim(1)?
    } else if cfg.top_k == 0 && cfg.top_p >= 1.0 {
        draw_full(&w, &(u * &total)?)?
    } else {
        return truncated(&z, &w, &total, &log_norm, &lf, inv_t, cfg, uniforms, vocab);
    };
    finish(&lf, &tokens, inv_t, &log_norm)
}

/// Token ids `[rows, 1]` and their log-probabilities, copied to the host.
fn finish(
    lf: &Tensor,
    tokens: &Tensor,
    inv_t: f32,
    log_norm: &Tensor,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let tokens = tokens.to_dtype(DType::U32)?.contiguous()?;
    let z_tok = lf.gather(&tokens, 1)?.to_dtype(DType::F64)?;
    let logp = ((z_tok * inv_t as f64)? - log_norm)?.to_dtype(DType::F32)?;
    Ok((tokens.squeeze(1)?.to_vec1()?, logp.squeeze(1)?.to_vec1()?))
}

/// `[rows, n]` padded with `fill` to a multiple of [`BLOCK`] and viewed as `[rows, blocks, BLOCK]`.
fn blocks(x: &Tensor, fill: f64) -> Result<Tensor> {
    let (rows, n) = x.dims2()?;
    let nb = n.div_ceil(BLOCK);
    let pad = nb * BLOCK - n;
    let x = if pad > 0 {
        let p = (Tensor::ones((rows, pad), x.dtype(), x.device())? * fill)?;
        Tensor::cat(&[x, &p], 1)?
    } else {
        x.clone()
    };
    x.reshape((rows, nb, BLOCK))
}

/// The number of entries of each row of `cum` (`[rows, n]`, ascending) at most `target`
/// (`[rows, 1]`), as u32 `[rows, 1]`, capped at `cap`.
fn count_le(cum: &Tensor, target: &Tensor, cap: usize) -> Result<Tensor> {
    cum.broadcast_le(target)?
        .to_dtype(DType::U32)?
        .sum_keepdim(1)?
        .minimum(cap as u32)
}

/// Inverse CDF of the weights `w` (`[rows, vocab]` f64) at `target`: the first token whose
/// running sum exceeds it, found through block sums and one block's prefix sums.
fn draw_full(w: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (rows, vocab) = w.dims2()?;
    let wb = blocks(w, 0.0)?;
    let nb = wb.dim(1)?;
    let bsum = wb.sum(2)?;
    let bcum = bsum.cumsum(1)?;
    let blk = count_le(&bcum, target, nb - 1)?; // [rows, 1]
    let before = (&bcum - &bsum)?.gather(&blk, 1)?;
    let pick = blk
        .unsqueeze(2)?
        .broadcast_as((rows, 1, BLOCK))?
        .contiguous()?;
    let inner = wb.gather(&pick, 1)?.squeeze(1)?;
    let icum = inner.cumsum(1)?.broadcast_add(&before)?;
    let within = count_le(&icum, target, BLOCK - 1)?;
    let tok = ((blk * BLOCK as f64)? + within)?;
    tok.minimum((vocab - 1) as u32)
}

/// Top-k / top-p over the candidates of each block; rows whose kept prefix leaves the
/// candidates' exact region are finished on the host.
#[allow(clippy::too_many_arguments)]
fn truncated(
    z: &Tensor,
    w: &Tensor,
    total: &Tensor,
    log_norm: &Tensor,
    lf: &Tensor,
    inv_t: f32,
    cfg: &SamplerConfig,
    uniforms: &[f64],
    vocab: usize,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let dev = z.device();
    let rows = uniforms.len();
    let zb = blocks(z, f64::NEG_INFINITY)?.contiguous()?;
    let nb = zb.dim(1)?;
    let m = PER_BLOCK.min(BLOCK);
    let order = zb.arg_sort_last_dim(false)?;
    let local = order.narrow(2, 0, m)?.contiguous()?;
    let base = (Tensor::arange(0u32, nb as u32, dev)? * BLOCK as f64)?.reshape((1, nb, 1))?;
    let cand_idx = local.broadcast_add(&base)?.reshape((rows, nb * m))?;
    let cand_z = zb
        .gather(&local, 2)?
        .reshape((rows, nb * m))?
        .contiguous()?;
    // The best value left out of the candidates: prefixes above it are the true top.
    let left_out = if m < BLOCK {
        let next = order.narrow(2, m, 1)?.contiguous()?;
        zb.gather(&next, 2)?.squeeze(2)?.max_keepdim(1)?
    } else {
        Tensor::full(f32::NEG_INFINITY, (rows, 1), dev)?
    };
    let ord = cand_z.arg_sort_last_dim(false)?;
    let sorted_idx = cand_idx.gather(&ord, 1)?;
    let sorted_z = cand_z.gather(&ord, 1)?;
    let c = nb * m;
    let limit = if cfg.top_k > 0 {
        cfg.top_k.min(vocab)
    } else {
        vocab
    };
    // Padding candidates (index >= vocab) have weight 0 and sort last.
    let w_padded = blocks(w, 0.0)?.reshape((rows, nb * BLOCK))?;
    let probs = w_padded.gather(&sorted_idx, 1)?.broadcast_div(total)?;
    let cum = probs.cumsum(1)?;
    let kept = if cfg.top_p < 1.0 {
        let below = cum.lt(cfg.top_p)?.to_dtype(DType::U32)?.sum_keepdim(1)?;
        (below + 1.0)?.minimum(limit.min(c) as u32)?
    } else {
        Tensor::full(limit.min(c) as u32, (rows, 1), dev)?
    };
    // Integer affine ops cast their scalars to the integer type (-1 would become 0).
    let last = kept.broadcast_sub(&Tensor::ones((1, 1), DType::U32, dev)?)?;
    // Exact when the kept prefix stays above every left-out token and was not cut short by
    // running out of candidates.
    let floor = sorted_z.gather(&last, 1)?;
    let above = floor.broadcast_gt(&left_out)?.to_dtype(DType::U32)?;
    let complete = if limit <= c {
        Tensor::ones((rows, 1), DType::U32, dev)?
    } else {
        kept.lt(c as u32)?.to_dtype(DType::U32)?
    };
    let exact = (above * complete)?;
    let mass = cum.gather(&last, 1)?;
    let target = (Tensor::from_slice(uniforms, (rows, 1), dev)? * mass)?;
    let pos = Tensor::arange(0u32, c as u32, dev)?.reshape((1, c))?;
    let in_kept = pos.broadcast_lt(&kept)?;
    let below_target = cum.broadcast_le(&target)?;
    let count = (below_target * in_kept)?
        .to_dtype(DType::U32)?
        .sum_keepdim(1)?
        .minimum(&last)?;
    let tokens = sorted_idx.gather(&count, 1)?;
    let (mut toks, mut logps) = finish(lf, &tokens, inv_t, log_norm)?;
    let exact: Vec<u32> = exact.squeeze(1)?.to_vec1()?;
    for r in 0..rows {
        if exact[r] != 1 {
            let wr: Vec<f64> = w.get(r)?.to_vec1()?;
            let zr: Vec<f32> = z.get(r)?.to_vec1()?;
            let tok = host_truncated(&zr, &wr, cfg, uniforms[r]);
            let one = Tensor::new(&[[tok]], dev)?;
            let (t, l) = finish(
                &lf.get(r)?.unsqueeze(0)?,
                &one,
                inv_t,
                &log_norm.get(r)?.unsqueeze(0)?,
            )?;
            toks[r] = t[0];
            logps[r] = l[0];
        }
    }
    Ok((toks, logps))
}

/// The top-k / top-p draw of one row on the host, from the device's weights: tokens in
/// descending order of logit (ties by index), the same kept prefix and draw as the device.
fn host_truncated(z: &[f32], w: &[f64], cfg: &SamplerConfig, u: f64) -> u32 {
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
    let total: f64 = w.iter().sum();
    let limit = if cfg.top_k > 0 {
        cfg.top_k.min(z.len())
    } else {
        z.len()
    };
    let mut kept = limit;
    if cfg.top_p < 1.0 {
        let mut mass = 0.0;
        for (k, &i) in order.iter().take(limit).enumerate() {
            mass += w[i] / total;
            if mass >= cfg.top_p {
                kept = k + 1;
                break;
            }
        }
    }
    let mass: f64 = order[..kept].iter().map(|&i| w[i] / total).sum();
    let target = u * mass;
    let mut acc = 0.0;
    for &i in &order[..kept] {
        acc += w[i] / total;
        if target < acc {
            return i as u32;
        }
    }
    order[kept - 1] as u32
}
