//! Fused AdamW vs AdamW written with candle tensor ops, on parameters shaped like
//! Qwen2.5-0.5B decoder layers (hidden 896, intermediate 4864, kv dim 128).
//!
//! `cargo bench -p oneshot-rl --bench adamw -- [layers]` (default 7 layers = 104M parameters;
//! the full 0.5B model is 494M, which this machine's memory fits for the fused optimiser only).
//! Prints the median seconds per step and the effective memory traffic.

use std::time::Instant;

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use oneshot_optim::{AdamW, AdamWConfig, CandleOpsAdamW};

const HIDDEN: usize = 896;
const INTER: usize = 4864;
const KV: usize = 128;

fn layer_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("q_proj.weight", vec![HIDDEN, HIDDEN]),
        ("q_proj.bias", vec![HIDDEN]),
        ("k_proj.weight", vec![KV, HIDDEN]),
        ("k_proj.bias", vec![KV]),
        ("v_proj.weight", vec![KV, HIDDEN]),
        ("v_proj.bias", vec![KV]),
        ("o_proj.weight", vec![HIDDEN, HIDDEN]),
        ("gate_proj.weight", vec![INTER, HIDDEN]),
        ("up_proj.weight", vec![INTER, HIDDEN]),
        ("down_proj.weight", vec![HIDDEN, INTER]),
        ("input_layernorm.weight", vec![HIDDEN]),
        ("post_attention_layernorm.weight", vec![HIDDEN]),
    ]
}

fn make_params(layers: usize, dtype: DType) -> Vec<(String, Var)> {
    let dev = Device::Cpu;
    let mut out = Vec::new();
    for l in 0..layers {
        for (name, shape) in layer_shapes() {
            let t = Tensor::randn(0f32, 0.02, shape.as_slice(), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            out.push((format!("layers.{l}.{name}"), Var::from_tensor(&t).unwrap()));
        }
    }
    out
}

fn make_grads(params: &[(String, Var)]) -> GradStore {
    let mut store = GradStore::default();
    for (_, v) in params {
        let g = Tensor::randn(0f32, 1e-3, v.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(v.dtype())
            .unwrap();
        store.insert(v.as_tensor(), g);
    }
    store
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn time_steps(
    label: &str,
    n_params: usize,
    bytes_per_param: f64,
    runs: usize,
    mut step: impl FnMut(),
) -> f64 {
    step(); // warm-up: first-touch page faults of the moments
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let med = median(times.clone());
    let gbs = n_params as f64 * bytes_per_param / med / 1e9;
    println!(
        "{label:<28} median {med:>7.3} s/step  ({:.1} GB/s effective, runs {:?})",
        gbs,
        times
            .iter()
            .map(|t| (t * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    med
}

fn main() {
    let layers: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let threads = rayon::current_num_threads();
    let cfg = AdamWConfig {
        lr: 1e-6,
        ..AdamWConfig::default()
    };
    println!("adamw bench: {layers} Qwen2.5-0.5B-shaped layers, rayon threads {threads}");

    let params = make_params(layers, DType::F32);
    let n: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    println!("parameters: {n} ({:.1}M)", n as f64 / 1e6);
    let grads = make_grads(&params);
    // Fused f32: read g, p(master), m, v; write master, m, v, param = 8 x 4 bytes.
    let mut fused = AdamW::new(params.clone(), cfg).unwrap();
    let fused_s = time_steps("fused, f32 params", n, 32.0, 5, || {
        fused.step(&grads, 1e-6).unwrap();
    });
    drop(fused);

    let mut naive =
        CandleOpsAdamW::new(params.iter().map(|(_, v)| v.clone()).collect(), cfg).unwrap();
    let naive_s = time_steps("candle ops, f32 params", n, 32.0, 3, || {
        naive.step(&grads, 1e-6).unwrap();
    });
    drop(naive);
    drop(grads);
    drop(params);

    let params16 = make_params(layers, DType::BF16);
    let grads16 = make_grads(&params16);
    // bf16: grads are converted to an f32 copy first (2 + 4 + 4 bytes), the param written as bf16.
    let mut fused16 = AdamW::new(params16.clone(), cfg).unwrap();
    let fused16_s = time_steps("fused, bf16 params", n, 36.0, 5, || {
        fused16.step(&grads16, 1e-6).unwrap();
    });

    let scale = 494_032_768f64 / n as f64;
    println!(
        "speed-up fused vs candle ops (f32): {:.1}x; extrapolated to 494M params: fused f32 {:.2} s, \
         fused bf16 {:.2} s, candle ops {:.2} s per step",
        naive_s / fused_s,
        fused_s * scale,
        fused16_s * scale,
        naive_s * scale
    );
}
