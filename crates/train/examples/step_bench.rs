//! Step-time breakdown (rollout / reward / logprob / update) of the trainer on a random model,
//! CPU by default.
//!
//! ```text
//! cargo run --release -p oneshot-train --example step_bench -- small
//! cargo run --release -p oneshot-train --example step_bench -- qwen05b [rows n max_response steps kl]
//! ```
//! `small`: 4 layers, hidden 256, vocab 4096 (about 5M parameters). `qwen05b`: Qwen2.5-0.5B's
//! shape (24 layers, hidden 896, 14/2 heads, vocab 151936, tied; 494M parameters), f32.
//! The vocabulary is word-level (`w0`, `w1`, ...), the task the toy's single prompt; the random
//! policy never stops early, so every response has the maximum length. `BENCH_MATMUL=bf16`
//! multiplies the projections in bf16 (`model.matmul`); `ONESHOT_MALLOC=system` keeps glibc's
//! default allocator behaviour (see `oneshot_kernels::alloc`). `BENCH_KEEP=DIR` writes the
//! model, the task and the run's `--set` overrides (`DIR/sets.txt`, one per line) into DIR and
//! keeps them, so `oneshot train` (e.g. under `mpirun`) can run the same step.

use std::time::Instant;

use oneshot_train::toy::{qwen2_config, write_model_dir};
use oneshot_train::{train_with, RunOptions, StepMetrics, TrainConfig};

fn main() -> anyhow::Result<()> {
    oneshot_kernels::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = args.first().map(String::as_str).unwrap_or("small");
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (rows, n, max_resp, steps) = (num(1, 2), num(2, 4), num(3, 32), num(4, 3));
    let kl = args.get(5).is_none_or(|s| s != "nokl");
    let cfg = match shape {
        "small" => qwen2_config(4096, 256, 704, 4, 4, 2)?,
        "qwen05b" => qwen2_config(151936, 896, 4864, 24, 14, 2)?,
        other => anyhow::bail!("unknown shape {other} (small | qwen05b)"),
    };
    let params = cfg.num_parameters();
    let mut words: Vec<String> = vec!["<pad>".into(), "<eos>".into()];
    words.extend((2..cfg.vocab_size).map(|i| format!("w{i}")));
    let temp = tempfile::tempdir()?;
    let keep = std::env::var_os("BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = keep.as_deref().unwrap_or(temp.path());
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir)?;
    let t0 = Instant::now();
    write_model_dir(&model_dir, cfg, &words, 0.02, 0)?;
    eprintln!(
        "wrote a random {shape} model ({params} parameters) in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let data = dir.join("task.parquet");
    oneshot_data::verl::write_verl_parquet(
        &data,
        &[oneshot_data::verl::VerlRow {
            data_source: "bench".into(),
            prompt: vec![oneshot_data::verl::ChatTurn::user(
                "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20",
            )],
            ability: "math".into(),
            ground_truth: "7".into(),
            reward_style: "rule".into(),
            index: 0,
            extra: Vec::new(),
        }],
    )?;
    let out = std::env::var("BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.join("run"));
    let sets: Vec<String> = vec![
        format!("model.path={:?}", model_dir.display().to_string()),
        "model.dtype=\"f32\"".into(),
        // BENCH_MATMUL=bf16: bf16 products (forward and backward) with f32 weights.
        format!(
            "model.matmul={:?}",
            std::env::var("BENCH_MATMUL").unwrap_or_else(|_| "f32".into())
        ),
        format!("data.train_files=[{:?}]", data.display().to_string()),
        format!("data.train_batch_size={rows}"),
        format!("trainer.mini_batch_size={rows}"),
        format!("rollout.n={n}"),
        format!("rollout.max_response_length={max_resp}"),
        format!("trainer.total_steps={steps}"),
        "trainer.save_every=0".into(),
        "validation.every=0".into(),
        "trainer.progress_bar=false".into(),
        format!("trainer.output_dir={:?}", out.display().to_string()),
        format!("algorithm.use_kl_loss={kl}"),
    ];
    if keep.is_some() {
        std::fs::write(dir.join("sets.txt"), sets.join("\n") + "\n")?;
    }
    let cfg = TrainConfig::load(None, &sets)?;
    let _ = std::fs::remove_dir_all(&out);
    let mut metrics = Vec::new();
    train_with(cfg, &RunOptions::default(), |_, m| {
        metrics.push(m.clone());
        Ok(())
    })?;
    let row = |m: &StepMetrics| {
        let t = &m.time;
        [t.rollout, t.reward, t.logprob, t.update, t.step]
    };
    println!("| step | rollout | reward | logprob | update | step | gen tokens/s |");
    for m in &metrics {
        let cells: Vec<String> = row(m).iter().map(|v| format!("{v:.3}")).collect();
        println!(
            "| {} | {} | {:.1} |",
            m.step,
            cells.join(" | "),
            m.gen_tokens_per_s
        );
    }
    // Means over the steps after the first (which pays one-time warm-up costs).
    let tail = if metrics.len() > 1 {
        &metrics[1..]
    } else {
        &metrics[..]
    };
    let means: Vec<String> = (0..5)
        .map(|k| {
            format!(
                "{:.3}",
                tail.iter().map(|m| row(m)[k]).sum::<f64>() / tail.len() as f64
            )
        })
        .collect();
    println!("| mean (steps 2..) | {} | |", means.join(" | "));
    println!(
        "shape {shape}, {params} params, {rows} rows x n {n}, max response {max_resp}, kl {kl}"
    );
    Ok(())
}
