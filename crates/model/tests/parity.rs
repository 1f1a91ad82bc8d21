//! Parity with transformers on the committed fixtures (scripts/make_model_fixtures.py):
//! logits, response log-probs/entropies, parameter gradients and greedy generation.
mod common;
use common::*;
use oneshot_model::{GenerateOptions, LogprobOptions, SamplerConfig};

#[test]
fn logits_match_transformers_on_a_left_padded_batch() {
    for name in FIXTURES {
        let f = load_fixture(name);
        let batch = batch_from(&f.expected["input_ids"], &f.expected["attention_mask"]);
        let ours = to_vec(&f.model.logits(&batch).unwrap());
        let theirs = to_vec(&f.expected["logits"]);
        let v = f.model.config.vocab_size;
        let mut worst = 0.0f32;
        for (row, &m) in batch.attention_mask.iter().enumerate() {
            if m == 1 {
                worst = worst.max(max_abs_diff(
                    &ours[row * v..(row + 1) * v],
                    &theirs[row * v..(row + 1) * v],
                ));
            }
        }
        assert!(worst < 1e-4, "{name}: max |logit diff| {worst}");
    }
}

#[test]
fn logprobs_and_entropy_match_transformers() {
    for name in FIXTURES {
        let f = load_fixture(name);
        let batch = batch_from(&f.expected["input_ids"], &f.expected["attention_mask"]);
        let opts = LogprobOptions {
            chunk_rows: 3,
            recompute_layers: false,
        };
        let (lp, en) = f
            .model
            .token_logprobs(&batch, f.response_start, f.temperature, &opts)
            .unwrap();
        let dl = max_abs_diff(&to_vec(&lp), &to_vec(&f.expected["logp"]));
        let de = max_abs_diff(&to_vec(&en), &to_vec(&f.expected["entropy"]));
        assert!(
            dl < 1e-4 && de < 1e-4,
            "{name}: logp diff {dl}, entropy diff {de}"
        );
    }
}

/// Our gradient of the fixture's loss vs transformers', per parameter, relative to the
/// largest reference entry.
fn check_grads(name: &str, f: &Fixture, grads: &candle_core::backprop::GradStore, how: &str) {
    for (pname, var) in f.model.vars() {
        let want = to_vec(&f.expected[&format!("grad.{pname}")]);
        let got = to_vec(
            grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} {how}: no gradient for {pname}")),
        );
        let rel = max_abs_diff(&got, &want) / max_abs(&want).max(1e-12);
        assert!(
            rel < 1e-3,
            "{name} {how}: gradient of {pname} off by {rel} (relative)"
        );
    }
}

#[test]
fn gradients_match_transformers_with_and_without_recompute() {
    for name in FIXTURES {
        let f = load_fixture(name);
        let batch = batch_from(&f.expected["input_ids"], &f.expected["attention_mask"]);
        let w = f.entropy_weight;
        for recompute_layers in [false, true] {
            let opts = LogprobOptions {
                chunk_rows: 4,
                recompute_layers,
            };
            let (loss, grads) = f
                .model
                .logprobs_with_grad(&batch, f.response_start, f.temperature, &opts, |lp, en| {
                    Ok((lp.sum_all()? + (en.sum_all()? * w)?)?)
                })
                .unwrap();
            assert!(loss.is_finite());
            check_grads(
                name,
                &f,
                &grads,
                if recompute_layers {
                    "checkpointed"
                } else {
                    "staged"
                },
            );
        }
        // The plain graph path: the caller calls backward() itself.
        let (lp, en) = f
            .model
            .token_logprobs_tracked(
                &batch,
                f.response_start,
                f.temperature,
                &LogprobOptions::default(),
            )
            .unwrap();
        let loss = (lp.sum_all().unwrap() + (en.sum_all().unwrap() * w).unwrap()).unwrap();
        check_grads(name, &f, &loss.backward().unwrap(), "tracked");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in FIXTURES {
        let f = load_fixture(name);
        let prompts_batch = batch_from(
            &f.expected["gen_prompt_ids"],
            &f.expected["gen_attention_mask"],
        );
        let prompts: Vec<Vec<u32>> = prompts_batch
            .input_ids
            .chunks(prompts_batch.seq_len)
            .zip(prompts_batch.attention_mask.chunks(prompts_batch.seq_len))
            .map(|(ids, m)| {
                ids.iter()
                    .zip(m)
                    .filter(|(_, &m)| m == 1)
                    .map(|(&t, _)| t)
                    .collect()
            })
            .collect();
        let want = f.expected["greedy_tokens"]
            .to_dtype(candle_core::DType::I64)
            .unwrap()
            .to_vec2::<i64>()
            .unwrap();
        let opts = GenerateOptions {
            sampler: SamplerConfig::greedy(),
            max_new_tokens: want[0].len(),
            eos_token_ids: vec![],
            stop_sequences: vec![],
            pad_token_id: 0,
        };
        let gens = f
            .model
            .generate(&prompts, &vec![0; prompts.len()], &opts, None)
            .unwrap();
        for (i, g) in gens.iter().enumerate() {
            let want_i: Vec<u32> = want[i].iter().map(|&t| t as u32).collect();
            assert_eq!(g.tokens, want_i, "{name}: greedy row {i}");
            assert_eq!(g.finish, oneshot_model::FinishReason::Length);
        }
    }
}
