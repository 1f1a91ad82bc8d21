//! Speed of `matmul_nt_inference` (f32 and bf16 weights) vs candle's `x.matmul(w.t())` at the
//! Qwen2.5-0.5B projection shapes, best of `reps` (robust to other load on the machine).
//!
//!     cargo run --release -p oneshot-kernels --example matmul_nt_speed -- 1,8,32,512 7
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: Vec<usize> = args
        .get(1)
        .map_or("1,8,32,512", String::as_str)
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let reps: usize = args.get(2).map_or(7, |s| s.parse().unwrap());
    let dev = Device::Cpu;
    println!("threads {}", rayon::current_num_threads());
    println!("| rows | n x k | candle f32 ms | ours f32 ms | ours bf16-w ms | ours bf16 x bf16-w ms | candle GB/s / GFLOP/s | ours f32 GB/s / GFLOP/s | ours bf16-w GB/s / GFLOP/s |");
    for &(n, k) in &[
        (896usize, 896usize),
        (4864, 896),
        (896, 4864),
        (151936, 896),
    ] {
        let w = Tensor::randn(0f32, 0.02, (n, k), &dev)?;
        let wb = w.to_dtype(DType::BF16)?;
        for &m in &rows {
            if n == 151936 && m > 32 {
                continue;
            }
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let tc = best(reps, || drop(x.matmul(&w.t().unwrap()).unwrap()));
            let tf = best(reps, || {
                drop(oneshot_kernels::matmul_nt_inference(&x, &w).unwrap())
            });
            let tb = best(reps, || {
                drop(oneshot_kernels::matmul_nt_inference(&x, &wb).unwrap())
            });
            let xb = x.to_dtype(DType::BF16)?;
            let tbb = best(reps, || {
                drop(oneshot_kernels::matmul_nt_inference(&xb, &wb).unwrap())
            });
            let flop = 2.0 * (m * n * k) as f64;
            let gb = |t: f64, bytes: usize| (n * k * bytes) as f64 / t / 1e9;
            println!(
                "| {m} | {n} x {k} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
                tc * 1e3, tf * 1e3, tb * 1e3, tbb * 1e3,
                gb(tc, 4), flop / tc / 1e9, gb(tf, 4), flop / tf / 1e9, gb(tb, 2), flop / tb / 1e9
            );
        }
    }
    Ok(())
}
