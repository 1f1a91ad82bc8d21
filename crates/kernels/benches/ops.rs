//! Micro-benchmark: fused CPU kernels vs the reference composition of candle primitives, on
//! Qwen2.5-0.5B-like shapes (hidden 896, 14 heads x 64, 2 kv heads, MLP 4864, vocab 151936,
//! 512 tokens).
//!
//! Run: `cargo bench -p oneshot-kernels --bench ops -- [--reps N] [--rows N] [op names...]`
//! Ops: rms_norm rope softmax log_softmax attention silu_mul logprobs. Prints a markdown table of medians.

use candle_core::{DType, Device, Result, Tensor, Var};
use oneshot_kernels as k;
use oneshot_kernels::reference as r;
use std::hint::black_box;
use std::time::Instant;

const HIDDEN: usize = 896;
const HEADS: usize = 14;
const HEAD_DIM: usize = 64;
const KV_HEADS: usize = 2;
const MLP: usize = 4864;
const VOCAB: usize = 151_936;

/// Deterministic pseudo-random values in [-scale, scale) (xorshift; no RNG dependency needed
/// for timing inputs).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn var(dims: &[usize], seed: u64, scale: f32) -> Var {
    let n = dims.iter().product();
    Var::from_tensor(&Tensor::from_vec(values(n, seed, scale), dims, &Device::Cpu).unwrap())
        .unwrap()
}

fn median_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> f64 {
    f().unwrap(); // warm-up (page faults, rayon pool start)
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f().unwrap();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// A tensor -> tensor op (fused or reference).
type RowOp = fn(&Tensor) -> Result<Tensor>;

struct Row {
    name: String,
    fused_fwd: f64,
    ref_fwd: f64,
    fused_fb: f64,
    ref_fb: f64,
}

/// Times `op` forward only and forward + backward of `sum(outputs)`.
fn bench(
    name: &str,
    reps: usize,
    fused: impl Fn() -> Result<Vec<Tensor>>,
    reference: impl Fn() -> Result<Vec<Tensor>>,
) -> Row {
    let fwd = |f: &dyn Fn() -> Result<Vec<Tensor>>| {
        median_ms(reps, || {
            black_box(f()?);
            Ok(())
        })
    };
    let fb = |f: &dyn Fn() -> Result<Vec<Tensor>>| {
        median_ms(reps, || {
            let outs = f()?;
            let mut loss = outs[0].sum_all()?;
            for o in &outs[1..] {
                loss = (loss + o.sum_all()?)?;
            }
            black_box(loss.backward()?);
            Ok(())
        })
    };
    let row = Row {
        name: name.to_string(),
        fused_fwd: fwd(&fused),
        ref_fwd: fwd(&reference),
        fused_fb: fb(&fused),
        ref_fb: fb(&reference),
    };
    eprintln!("done: {name}");
    row
}

fn main() -> Result<()> {
    let mut reps = 10usize;
    let mut rows = 512usize;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            "--rows" => rows = args.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--bench" => {} // passed by `cargo bench`
            other => only.push(other.to_string()),
        }
    }
    let wanted = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    let t = rows;
    let mut table = Vec::new();

    if wanted("rms_norm") {
        let x = var(&[t, HIDDEN], 1, 2.0);
        let w = var(&[HIDDEN], 2, 1.0);
        table.push(bench(
            &format!("rms_norm [{t}, {HIDDEN}]"),
            reps * 5,
            || Ok(vec![k::rms_norm(&x, &w, 1e-6)?]),
            || Ok(vec![r::rms_norm(&x, &w, 1e-6)?]),
        ));
    }
    if wanted("rope") {
        let x = var(&[1, HEADS, t, HEAD_DIM], 3, 1.0);
        let cos = Tensor::from_vec(
            values(t * HEAD_DIM / 2, 4, 1.0),
            (1, t, HEAD_DIM / 2),
            &Device::Cpu,
        )?;
        let sin = Tensor::from_vec(
            values(t * HEAD_DIM / 2, 5, 1.0),
            (1, t, HEAD_DIM / 2),
            &Device::Cpu,
        )?;
        table.push(bench(
            &format!("rope [1, {HEADS}, {t}, {HEAD_DIM}]"),
            reps * 5,
            || Ok(vec![k::rope(&x, &cos, &sin)?]),
            || Ok(vec![r::rope(&x, &cos, &sin)?]),
        ));
    }
    for log in [false, true] {
        let name = if log { "log_softmax" } else { "softmax" };
        if wanted(name) {
            let x = var(&[1, HEADS, t, t], 6, 8.0);
            let (f, g): (RowOp, RowOp) = if log {
                (k::log_softmax_last_dim, r::log_softmax_last_dim)
            } else {
                (k::softmax_last_dim, r::softmax_last_dim)
            };
            table.push(bench(
                &format!("{name} [1, {HEADS}, {t}, {t}]"),
                reps,
                || Ok(vec![f(&x)?]),
                || Ok(vec![g(&x)?]),
            ));
        }
    }
    if wanted("attention") {
        let q = var(&[1, HEADS, t, HEAD_DIM], 10, 1.0);
        let kk = var(&[1, KV_HEADS, t, HEAD_DIM], 11, 1.0);
        let v = var(&[1, KV_HEADS, t, HEAD_DIM], 12, 1.0);
        let scale = 1.0 / (HEAD_DIM as f64).sqrt();
        table.push(bench(
            &format!("causal_attention q [1, {HEADS}, {t}, {HEAD_DIM}], kv {KV_HEADS} heads"),
            reps,
            || Ok(vec![k::causal_attention(&q, &kk, &v, None, scale)?]),
            || Ok(vec![r::causal_attention(&q, &kk, &v, None, scale)?]),
        ));
    }
    if wanted("silu_mul") {
        let gate = var(&[t, MLP], 7, 4.0);
        let up = var(&[t, MLP], 8, 1.0);
        table.push(bench(
            &format!("silu_mul [{t}, {MLP}]"),
            reps,
            || Ok(vec![k::silu_mul(&gate, &up)?]),
            || Ok(vec![r::silu_mul(&gate, &up)?]),
        ));
    }
    if wanted("logprobs") {
        let logits = var(&[t, VOCAB], 9, 10.0);
        let targets: Vec<u32> = (0..t as u32).map(|i| i * 7919 % VOCAB as u32).collect();
        let targets = Tensor::new(targets, &Device::Cpu)?;
        let reps = reps.div_ceil(2).max(3);
        for temp in [1.0, 0.6] {
            table.push(bench(
                &format!("logprobs_and_entropy [{t}, {VOCAB}] T={temp}"),
                reps,
                || {
                    let (a, b) = k::logprobs_and_entropy(&logits, &targets, temp)?;
                    Ok(vec![a, b])
                },
                || {
                    let (a, b) = r::logprobs_and_entropy(&logits, &targets, temp)?;
                    Ok(vec![a, b])
                },
            ));
        }
        let bf = logits.as_tensor().to_dtype(DType::BF16)?;
        let bf = Var::from_tensor(&bf)?;
        table.push(bench(
            &format!("logprobs_and_entropy bf16 [{t}, {VOCAB}]"),
            reps,
            || {
                let (a, b) = k::logprobs_and_entropy(&bf, &targets, 1.0)?;
                Ok(vec![a, b])
            },
            || {
                let (a, b) = r::logprobs_and_entropy(&bf, &targets, 1.0)?;
                Ok(vec![a, b])
            },
        ));
    }

    println!(
        "threads: {}; median of {} reps (x5 for rms_norm/rope, /2 for logprobs)",
        rayon::current_num_threads(),
        reps
    );
    println!("| op | fused fwd (ms) | reference fwd (ms) | speed-up | fused fwd+bwd (ms) | reference fwd+bwd (ms) | speed-up |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &table {
        println!(
            "| {} | {:.2} | {:.2} | {:.1}x | {:.2} | {:.2} | {:.1}x |",
            row.name,
            row.fused_fwd,
            row.ref_fwd,
            row.ref_fwd / row.fused_fwd,
            row.fused_fb,
            row.ref_fb,
            row.ref_fb / row.fused_fb
        );
    }
    Ok(())
}
