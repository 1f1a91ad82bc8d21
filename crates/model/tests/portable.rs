//! The portable numeric mode (`ONESHOT_ISA=portable`, here set with `isa::set_cap`): forward,
//! backward, log-probs and decoding of a small random model give the same bits whatever the
//! rayon thread count, and no CPU-dependent product (candle's matmul, the AVX kernels) runs.
use candle_core::{DType, Device, Tensor};
use oneshot_kernels::isa::{self, Isa};
use oneshot_model::{
    Batch, GenerateOptions, LogprobOptions, MatmulPrecision, Model, ModelConfig, SamplerConfig,
};

/// Larger than the shared tiny model so products exceed 64 rows (where the default levels use
/// candle's matmul) and split into several tasks.
fn model(matmul: MatmulPrecision) -> Model {
    let cfg = ModelConfig::from_json(serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "vocab_size": 96, "hidden_size": 64,
        "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": false, "attention_bias": true, "torch_dtype": "float32"}))
    .unwrap();
    Model::random_with_std(cfg, DType::F32, &Device::Cpu, 11, 0.2)
        .unwrap()
        .with_matmul_precision(matmul)
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn batch() -> (Batch, usize) {
    let prompts: Vec<Vec<u32>> = (0..5)
        .map(|i| {
            (0..9 + 3 * i)
                .map(|j| ((i * 31 + j * 7) % 90 + 1) as u32)
                .collect()
        })
        .collect();
    let responses: Vec<Vec<u32>> = (0..5)
        .map(|i| {
            (0..6 + 2 * i)
                .map(|j| ((i * 13 + j * 5) % 90 + 2) as u32)
                .collect()
        })
        .collect();
    Batch::prompt_response(&prompts, &responses, 0).unwrap()
}

/// Every number a training step and a rollout produce, as bits.
fn everything(model: &Model) -> Vec<Vec<u32>> {
    let (batch, start) = batch();
    let mut out = Vec::new();
    for recompute_layers in [false, true] {
        let opts = LogprobOptions {
            chunk_rows: 16,
            recompute_layers,
        };
        let (loss, grads) = model
            .logprobs_with_grad(&batch, start, 0.9, &opts, |lp, en| {
                Ok((lp.sum_all()? + (en.sum_all()? * 0.1)?)?)
            })
            .unwrap();
        out.push(vec![loss.to_bits()]);
        for (name, var) in model.vars() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            out.push(bits(g));
        }
        let (lp, en) = model.token_logprobs(&batch, start, 0.9, &opts).unwrap();
        out.push(bits(&lp));
        out.push(bits(&en));
    }
    let opts = GenerateOptions {
        sampler: SamplerConfig {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        },
        max_new_tokens: 12,
        eos_token_ids: vec![],
        stop_sequences: vec![],
        pad_token_id: 0,
    };
    let prompts: Vec<Vec<u32>> = vec![vec![3, 9, 27, 17], vec![5, 60, 2], vec![12, 33, 8, 1, 4]];
    let gens = model.generate(&prompts, &[1, 2, 3], &opts, None).unwrap();
    for g in gens {
        out.push(g.tokens.clone());
        out.push(g.logprobs.iter().map(|v| v.to_bits()).collect());
    }
    out
}

fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn portable_level_gives_the_same_bits_with_any_thread_count() {
    isa::set_cap(Some(Isa::Portable));
    assert_eq!(isa::active(), Isa::Portable);
    for matmul in [MatmulPrecision::F32, MatmulPrecision::Bf16] {
        for fused in [true, false] {
            let m = model(matmul).with_fused_attention(fused);
            let one = with_threads(1, || everything(&m));
            for threads in [2, 3] {
                let other = with_threads(threads, || everything(&m));
                assert_eq!(one.len(), other.len());
                for (i, (a, b)) in one.iter().zip(&other).enumerate() {
                    assert!(
                        a == b,
                        "{matmul:?} fused attention {fused}: output {i} differs between 1 and {threads} threads"
                    );
                }
            }
        }
    }
    let used = isa::paths_used();
    assert!(used.iter().any(|p| p == "portable_matmul_nt"), "{used:?}");
    for p in &used {
        assert!(
            p.ends_with(":portable") || p == "portable_matmul_nt",
            "CPU-dependent path {p} ran under the portable level (all: {used:?})"
        );
    }
}
