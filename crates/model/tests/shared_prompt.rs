//! Generation with a paged KV cache of shared prompts: n samples of one prompt draw the same
//! tokens as each sample decoded alone, the cache holds the prompt once (its bytes bounded by
//! the prompt, the responses and one block per sequence), and continuous batching of those
//! samples gives every sequence the tokens of the static batch.
mod common;
use common::*;
use oneshot_model::kv_cache::BLOCK_TOKENS;
use oneshot_model::{Batch, GenerateOptions, LogprobOptions, SamplerConfig};

fn opts(max_new: usize, eos: Vec<u32>) -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerConfig {
            temperature: 0.9,
            top_p: 1.0,
            top_k: 0,
        },
        max_new_tokens: max_new,
        eos_token_ids: eos,
        stop_sequences: vec![],
        pad_token_id: 0,
    }
}

/// A prompt longer than a block, so sharing it is visible in the bytes.
fn prompt() -> Vec<u32> {
    (0..40u32).map(|i| 3 + (i * 17 + 5) % 60).collect()
}

#[test]
fn shared_prompt_decoding_matches_each_sample_alone() {
    let model = tiny("Qwen2ForCausalLM", true, 2, 5);
    let n = 6;
    let prompts = vec![prompt(); n];
    let seeds: Vec<u64> = (0..n as u64).map(|i| 70 + i).collect();
    let o = opts(24, vec![4, 5, 6]);
    let shared = model
        .generate_report(&prompts, &seeds, &o, n, None)
        .unwrap();
    assert_eq!(shared.prefilled_prompts, 1, "one prompt, one prefill");
    let lengths: Vec<usize> = shared.generations.iter().map(|g| g.tokens.len()).collect();
    assert!(
        lengths.iter().any(|&l| l < 24),
        "no row stopped early: {lengths:?}"
    );
    for (i, g) in shared.generations.iter().enumerate() {
        let alone = model
            .generate_report(&prompts[..1], &seeds[i..=i], &o, 1, None)
            .unwrap();
        let a = &alone.generations[0];
        assert_eq!(g.tokens, a.tokens, "sample {i}");
        assert!(max_abs_diff(&g.logprobs, &a.logprobs) < 1e-5, "sample {i}");
    }
    // And the recorded log-probs are the full forward's (what the trainer recomputes).
    let responses: Vec<Vec<u32>> = shared
        .generations
        .iter()
        .map(|g| g.tokens.clone())
        .collect();
    let (batch, start) = Batch::prompt_response(&prompts, &responses, 0).unwrap();
    let (lp, _) = model
        .token_logprobs(&batch, start, 0.9, &LogprobOptions::default())
        .unwrap();
    let lp = lp.to_vec2::<f32>().unwrap();
    for (i, g) in shared.generations.iter().enumerate() {
        let d = max_abs_diff(&g.logprobs, &lp[i][..g.tokens.len()]);
        assert!(
            d < 1e-4,
            "sample {i}: recorded vs recomputed log-probs differ by {d}"
        );
    }
}

#[test]
fn cache_holds_the_prompt_once_the_responses_and_at_most_a_block_per_sequence() {
    let model = tiny("Qwen2ForCausalLM", true, 2, 9);
    let c = &model.config;
    // f32 keys and values of one position in every layer.
    let per_token = c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * 4;
    let n = 256;
    let prompts = vec![prompt(); n];
    let seeds: Vec<u64> = (0..n as u64).collect();
    let o = opts(20, vec![4, 5]);
    for slots in [n, 64] {
        let r = model
            .generate_report(&prompts, &seeds, &o, slots, None)
            .unwrap();
        let response_tokens: usize = r.generations.iter().map(|g| g.tokens.len()).sum();
        let bound = (prompt().len() + response_tokens + n * BLOCK_TOKENS) * per_token;
        assert_eq!(r.prefilled_prompts, 1);
        assert!(
            r.peak_cache_bytes <= bound,
            "{slots} slots: peak {} bytes > bound {bound}",
            r.peak_cache_bytes
        );
        // The prompt is held once, not per sequence: the unshared cache would need this.
        let unshared = n * prompt().len() * per_token;
        assert!(
            r.peak_cache_bytes < unshared / 2,
            "{slots} slots: {}",
            r.peak_cache_bytes
        );
        // At least the prompt and a block per sequence decoding at the same time were held:
        // with every slot open, all that did not stop at their first token (which is never
        // fed back).
        let decoded = r.generations.iter().filter(|g| g.tokens.len() >= 2).count();
        let together = if slots == n { decoded } else { 1 };
        assert!(r.peak_cache_bytes >= (prompt().len() + together * BLOCK_TOKENS) * per_token);
    }
}

#[test]
fn continuous_batching_of_one_prompt_gives_the_static_batchs_tokens() {
    let model = tiny("LlamaForCausalLM", false, 1, 6);
    let n = 12;
    let mut prompts = vec![prompt(); n];
    // A second prompt among them: two shared prompts at once, one joining mid-way.
    for p in prompts.iter_mut().skip(7).step_by(2) {
        *p = vec![9, 8, 7];
    }
    let seeds: Vec<u64> = (0..n as u64).map(|i| 300 + i).collect();
    let o = opts(30, vec![4, 5]);
    let all = model
        .generate_report(&prompts, &seeds, &o, n, None)
        .unwrap();
    assert_eq!(all.prefilled_prompts, 2);
    let lengths: Vec<usize> = all.generations.iter().map(|g| g.tokens.len()).collect();
    assert!(
        lengths.iter().any(|&l| l < 30) && lengths.contains(&30),
        "{lengths:?}"
    );
    for cap in [1, 4, 5] {
        let cont = model
            .generate_continuous(&prompts, &seeds, &o, cap, None)
            .unwrap();
        for (i, (a, c)) in all.generations.iter().zip(&cont).enumerate() {
            assert_eq!(a.tokens, c.tokens, "cap {cap}, sequence {i}");
            assert_eq!(a.finish, c.finish, "cap {cap}, sequence {i}");
            assert!(
                max_abs_diff(&a.logprobs, &c.logprobs) < 1e-5,
                "cap {cap}, sequence {i}"
            );
        }
    }
}
