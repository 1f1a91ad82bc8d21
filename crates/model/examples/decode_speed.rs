//! Quick speed probe of the engine alone (no CLI): forward log-probs of a 4 x 128 batch and
//! decoding at the given batch sizes, on random weights of a config's shape.
//!
//!     cargo run --release -p oneshot-model --example decode_speed -- configs/shapes/qwen2.5-0.5b.json f32 1,8,32
use candle_core::Device;
use oneshot_model::{
    parse_dtype, Batch, GenerateOptions, LogprobOptions, Model, ModelConfig, SamplerConfig,
};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cfg = ModelConfig::from_file(std::path::Path::new(&args[1]))?;
    let dtype = parse_dtype(args.get(2).map_or("f32", String::as_str))?;
    let batches: Vec<usize> = args
        .get(3)
        .map_or("1,8,32", String::as_str)
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let model = Model::random(cfg.clone(), dtype, &Device::Cpu, 0)?;
    let vocab = cfg.vocab_size as u64;
    let token = |i: usize| ((i as u64 * 2654435761) % vocab) as u32;
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|r| (0..32).map(|i| token(r * 1000 + i)).collect())
        .collect();
    let responses: Vec<Vec<u32>> = (0..4)
        .map(|r| (0..96).map(|i| token(r * 1000 + 500 + i)).collect())
        .collect();
    let (batch, start) = Batch::prompt_response(&prompts, &responses, 0)?;
    model.token_logprobs(&batch, start, 0.6, &LogprobOptions::default())?;
    let t = Instant::now();
    model.token_logprobs(&batch, start, 0.6, &LogprobOptions::default())?;
    println!(
        "forward 4x128: {:.1} tok/s",
        512.0 / t.elapsed().as_secs_f64()
    );
    for b in batches {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|r| (0..16 + r % 8).map(|i| token(r * 77 + i)).collect())
            .collect();
        let seeds: Vec<u64> = (0..b as u64).collect();
        let mut gen = GenerateOptions {
            sampler: SamplerConfig {
                temperature: 0.6,
                top_p: 1.0,
                top_k: 0,
            },
            max_new_tokens: 1,
            eos_token_ids: vec![],
            stop_sequences: vec![],
            pad_token_id: 0,
        };
        let t = Instant::now();
        model.generate(&prompts, &seeds, &gen, None)?;
        let t1 = t.elapsed().as_secs_f64();
        gen.max_new_tokens = 16;
        let t = Instant::now();
        model.generate(&prompts, &seeds, &gen, None)?;
        let per_step = (t.elapsed().as_secs_f64() - t1) / 15.0;
        println!(
            "decode batch {b}: {:.1} tok/s ({:.1} ms/step)",
            b as f64 / per_step,
            per_step * 1e3
        );
    }
    Ok(())
}
