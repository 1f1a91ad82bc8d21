//! Decoding on the device-generic path (`ONESHOT_DEVICE_PATH=generic`: logits stay on the
//! device, sampled there, chunked attention) against the host path, on the device named by
//! ONESHOT_TEST_DEVICE (default cpu): for the same seeds, `generate` and `generate_continuous`
//! give identical tokens and log-probs within 1e-5, for greedy and for temperature sampling
//! with top-k and top-p. This file holds one test so that setting the variable cannot affect
//! another test of the same process.

use candle_core::DType;
use oneshot_kernels::device_path::ENV;
use oneshot_model::{FinishReason, GenerateOptions, Generation, Model, ModelConfig, SamplerConfig};

/// A random Qwen2 model on the test device whose vocabulary spans several sampling blocks
/// (`device_sampling::BLOCK`), so the block walk and the per-block candidates are exercised.
fn model() -> Model {
    let cfg = ModelConfig::from_json(serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "vocab_size": 1200, "hidden_size": 32,
        "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": false, "attention_bias": true, "torch_dtype": "float32"}))
    .unwrap();
    Model::random_with_std(cfg, DType::F32, &oneshot_test_device::device(), 11, 0.3).unwrap()
}

/// Both generation entry points under the step path `path`: the static batch, and continuous
/// batching with two running sequences.
fn decode(model: &Model, path: &str, opts: &GenerateOptions) -> (Vec<Generation>, Vec<Generation>) {
    // Two distinct prompts, three samples each: shared prefills and rows leaving the batch.
    let prompts: Vec<Vec<u32>> = (0..6)
        .map(|i| {
            let p = i % 2;
            (0..5 + 3 * p as u32)
                .map(|j| 3 + (j * 37 + p as u32 * 101) % 1100)
                .collect()
        })
        .collect();
    let seeds: Vec<u64> = (0..6).map(|i| 500 + 3 * i).collect();
    std::env::set_var(ENV, path);
    let all = model.generate(&prompts, &seeds, opts, None);
    let two = model.generate_continuous(&prompts, &seeds, opts, 2, None);
    std::env::remove_var(ENV);
    (all.unwrap(), two.unwrap())
}

fn same(host: &[Generation], generic: &[Generation], what: &str) {
    assert_eq!(host.len(), generic.len());
    for (i, (h, g)) in host.iter().zip(generic).enumerate() {
        assert_eq!(h.tokens, g.tokens, "{what}: sequence {i}: tokens");
        assert_eq!(h.finish, g.finish, "{what}: sequence {i}: finish");
        for (s, (a, b)) in h.logprobs.iter().zip(&g.logprobs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5,
                "{what}: sequence {i} token {s}: log-prob {a} (host) vs {b} (generic)"
            );
        }
    }
}

#[test]
fn generic_decoding_gives_the_host_tokens() {
    let model = model();
    // End-of-sequence: the greedy first token of prompt 0, likely under sampling too, so
    // sequences finish at different steps and leave the running batch.
    let greedy = GenerateOptions {
        sampler: SamplerConfig::greedy(),
        max_new_tokens: 1,
        eos_token_ids: vec![],
        stop_sequences: vec![],
        pad_token_id: 0,
    };
    let eos = decode(&model, "host", &greedy).0[0].tokens[0];
    // Sequences that ended at the end-of-sequence token, over all samplers.
    let mut early = 0;
    let samplers = [
        ("greedy", SamplerConfig::greedy()),
        (
            "temperature",
            SamplerConfig {
                temperature: 0.9,
                top_p: 1.0,
                top_k: 0,
            },
        ),
        (
            "top-k",
            SamplerConfig {
                temperature: 1.2,
                top_p: 1.0,
                top_k: 20,
            },
        ),
        (
            "top-p",
            SamplerConfig {
                temperature: 0.8,
                top_p: 0.9,
                top_k: 0,
            },
        ),
        (
            "top-k top-p",
            SamplerConfig {
                temperature: 1.0,
                top_p: 0.7,
                top_k: 50,
            },
        ),
    ];
    for (what, sampler) in samplers {
        let opts = GenerateOptions {
            sampler,
            max_new_tokens: 10,
            eos_token_ids: vec![eos],
            stop_sequences: vec![],
            pad_token_id: 0,
        };
        let (host, host_two) = decode(&model, "host", &opts);
        let (generic, generic_two) = decode(&model, "generic", &opts);
        same(&host, &generic, what);
        same(&host_two, &generic_two, &format!("{what}, continuous"));
        same(
            &host,
            &host_two,
            &format!("{what}, host static vs continuous"),
        );
        // The draws are not degenerate: sampled sequences of one prompt differ.
        if !sampler.is_greedy() {
            assert!(
                host[0].tokens != host[2].tokens || host[2].tokens != host[4].tokens,
                "{what}: every sample of a prompt drew the same tokens"
            );
        }
        assert!(host.iter().all(|g| !g.tokens.is_empty()));
        early += host
            .iter()
            .filter(|g| g.finish == FinishReason::Eos)
            .count();
    }
    assert!(
        early > 0,
        "no sequence ended early: none left the running batch"
    );
}
