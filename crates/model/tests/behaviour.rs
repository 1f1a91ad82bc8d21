//! Behaviour of the model engine on small random models: gradients reach every parameter and
//! agree with finite differences, padding does not change results, the KV cache agrees with
//! a full forward, sampling is reproducible per sequence, saving round-trips, bad checkpoints
//! give clear errors.
mod common;
use candle_core::{DType, Device, Tensor};
use common::*;
use oneshot_model::{Batch, FinishReason, GenerateOptions, LogprobOptions, Model, SamplerConfig};

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![3, 9, 27, 17, 51, 60], vec![5], vec![12, 33, 8]]
}

fn responses() -> Vec<Vec<u32>> {
    vec![vec![7, 1, 40], vec![2, 2, 9, 63, 11], vec![30]]
}

fn sampling(t: f64, max_new: usize) -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerConfig {
            temperature: t,
            top_p: 1.0,
            top_k: 0,
        },
        max_new_tokens: max_new,
        eos_token_ids: vec![],
        stop_sequences: vec![],
        pad_token_id: 0,
    }
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    for model in [
        tiny("Qwen2ForCausalLM", true, 2, 1),
        tiny("LlamaForCausalLM", false, 1, 2),
    ] {
        let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
        for recompute_layers in [false, true] {
            let opts = LogprobOptions {
                chunk_rows: 2,
                recompute_layers,
            };
            let (_, grads) = model
                .logprobs_with_grad(&batch, start, 0.9, &opts, |lp, en| {
                    Ok((lp.sum_all()? + en.sum_all()?)?)
                })
                .unwrap();
            for (name, var) in model.vars() {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {name}"));
                assert!(max_abs(&to_vec(g)) > 0.0, "zero gradient for {name}");
            }
        }
    }
}

#[test]
fn gradients_agree_with_finite_differences() {
    let model = tiny("Qwen2ForCausalLM", false, 2, 3);
    let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let (temp, ew) = (0.8, 0.3);
    let opts = LogprobOptions {
        chunk_rows: 4,
        recompute_layers: true,
    };
    let loss_of = |m: &Model| -> f64 {
        let (lp, en) = m.token_logprobs(&batch, start, temp, &opts).unwrap();
        let lp: Vec<f32> = to_vec(&lp);
        let en: Vec<f32> = to_vec(&en);
        lp.iter().map(|&x| x as f64).sum::<f64>() + ew * en.iter().map(|&x| x as f64).sum::<f64>()
    };
    let (_, grads) = model
        .logprobs_with_grad(&batch, start, temp, &opts, |lp, en| {
            Ok((lp.sum_all()? + (en.sum_all()? * ew)?)?)
        })
        .unwrap();
    let names = [
        "model.embed_tokens.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.self_attn.v_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ];
    for name in names {
        let var = model.var(name).unwrap();
        let g = to_vec(grads.get(var.as_tensor()).unwrap());
        // The entry with the largest gradient: finite differences are most informative there.
        let i = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        let orig = var.as_tensor().copy().unwrap();
        let eps = 1e-2f32;
        let at = |d: f32| {
            let mut v = to_vec(&orig);
            v[i] += d;
            var.set(&Tensor::from_vec(v, orig.dims(), &Device::Cpu).unwrap())
                .unwrap();
            loss_of(&model)
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
        var.set(&orig).unwrap();
        let an = g[i] as f64;
        assert!(
            (fd - an).abs() <= 2e-2 * an.abs().max(fd.abs()) + 2e-3,
            "{name}[{i}]: analytic {an}, finite difference {fd}"
        );
    }
}

#[test]
fn left_padded_batch_gives_the_same_logprobs_as_each_row_alone() {
    let model = tiny("LlamaForCausalLM", true, 2, 4);
    let opts = LogprobOptions::default();
    let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let (lp, en) = model.token_logprobs(&batch, start, 0.7, &opts).unwrap();
    let (lp, en) = (lp.to_vec2::<f32>().unwrap(), en.to_vec2::<f32>().unwrap());
    for (i, (p, r)) in prompts().iter().zip(responses()).enumerate() {
        let (one, s) =
            Batch::prompt_response(std::slice::from_ref(p), std::slice::from_ref(&r), 0).unwrap();
        let (lp1, en1) = model.token_logprobs(&one, s, 0.7, &opts).unwrap();
        let (lp1, en1) = (lp1.to_vec2::<f32>().unwrap(), en1.to_vec2::<f32>().unwrap());
        let d =
            max_abs_diff(&lp[i][..r.len()], &lp1[0]).max(max_abs_diff(&en[i][..r.len()], &en1[0]));
        assert!(d < 1e-5, "row {i}: padded vs alone differ by {d}");
        assert!(
            lp[i][r.len()..].iter().all(|&x| x == 0.0),
            "padding positions must be 0"
        );
    }
}

#[test]
fn kv_cache_decoding_matches_a_full_forward() {
    let model = tiny("Qwen2ForCausalLM", true, 2, 5);
    let mut opts = sampling(0.9, 10);
    // Some rows finish early on eos, so the cache is compacted mid-generation.
    opts.eos_token_ids = vec![4, 5, 6];
    let gens = model
        .generate(&prompts(), &[11, 12, 13], &opts, None)
        .unwrap();
    let finishes: Vec<FinishReason> = gens.iter().map(|g| g.finish).collect();
    assert!(
        finishes.contains(&FinishReason::Eos) && finishes.contains(&FinishReason::Length),
        "{finishes:?}"
    );
    let responses: Vec<Vec<u32>> = gens.iter().map(|g| g.tokens.clone()).collect();
    let (batch, start) = Batch::prompt_response(&prompts(), &responses, 0).unwrap();
    let (lp, _) = model
        .token_logprobs(&batch, start, 0.9, &LogprobOptions::default())
        .unwrap();
    let lp = lp.to_vec2::<f32>().unwrap();
    for (i, g) in gens.iter().enumerate() {
        let d = max_abs_diff(&g.logprobs, &lp[i][..g.tokens.len()]);
        assert!(
            d < 1e-4,
            "row {i}: cached decoding log-probs differ from full forward by {d}"
        );
    }
    // Greedy tokens are the argmax of the full forward's logits.
    let greedy = model
        .generate(&prompts(), &[0, 0, 0], &sampling(0.0, 8), None)
        .unwrap();
    let responses: Vec<Vec<u32>> = greedy.iter().map(|g| g.tokens.clone()).collect();
    let (batch, start) = Batch::prompt_response(&prompts(), &responses, 0).unwrap();
    let logits = model.logits(&batch).unwrap().to_dtype(DType::F32).unwrap();
    let argmax = logits.argmax(2).unwrap().to_vec2::<u32>().unwrap();
    for (i, g) in greedy.iter().enumerate() {
        assert_eq!(
            g.tokens,
            argmax[i][start - 1..start - 1 + g.tokens.len()].to_vec(),
            "row {i}"
        );
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_independent_of_the_batch() {
    let model = tiny("LlamaForCausalLM", false, 1, 6);
    let mut opts = sampling(1.0, 12);
    opts.sampler.top_p = 0.95;
    opts.sampler.top_k = 40;
    opts.eos_token_ids = vec![1];
    let all = model
        .generate(&prompts(), &[101, 102, 103], &opts, None)
        .unwrap();
    let again = model
        .generate(&prompts(), &[101, 102, 103], &opts, None)
        .unwrap();
    let alone = model
        .generate(&prompts()[1..2], &[102], &opts, None)
        .unwrap();
    let reordered = model
        .generate(
            &[prompts()[2].clone(), prompts()[0].clone()],
            &[103, 101],
            &opts,
            None,
        )
        .unwrap();
    for i in 0..3 {
        assert_eq!(all[i].tokens, again[i].tokens);
    }
    assert_eq!(alone[0].tokens, all[1].tokens);
    assert_eq!(reordered[0].tokens, all[2].tokens);
    assert_eq!(reordered[1].tokens, all[0].tokens);
    let other_seed = model
        .generate(&prompts()[1..2], &[999], &opts, None)
        .unwrap();
    assert_ne!(
        other_seed[0].tokens, all[1].tokens,
        "a different seed should give a different sample"
    );
}

#[test]
fn eos_stop_sequences_and_stop_callback_end_generation() {
    let model = tiny("Qwen2ForCausalLM", true, 2, 7);
    let p = vec![prompts()[0].clone()];
    let free = model.generate(&p, &[0], &sampling(0.0, 12), None).unwrap()[0].clone();
    assert_eq!(free.finish, FinishReason::Length);
    assert_eq!(free.tokens.len(), 12);

    let mut opts = sampling(0.0, 12);
    opts.eos_token_ids = vec![free.tokens[4]];
    let g = &model.generate(&p, &[0], &opts, None).unwrap()[0];
    let first = free
        .tokens
        .iter()
        .position(|&t| t == free.tokens[4])
        .unwrap();
    assert_eq!(
        (g.finish, g.tokens.as_slice()),
        (FinishReason::Eos, &free.tokens[..=first])
    );

    let mut opts = sampling(0.0, 12);
    opts.stop_sequences = vec![free.tokens[5..7].to_vec()];
    let g = &model.generate(&p, &[0], &opts, None).unwrap()[0];
    assert_eq!(g.finish, FinishReason::Stop);
    assert!(g.tokens.ends_with(&free.tokens[5..7]) && g.tokens.len() <= 7);

    let mut calls = 0;
    let mut check = |seq: usize, toks: &[u32]| {
        calls += 1;
        assert_eq!(seq, 0);
        toks.len() == 3
    };
    let g = &model
        .generate(&p, &[0], &sampling(0.0, 12), Some(&mut check))
        .unwrap()[0];
    assert_eq!(
        (g.finish, g.tokens.as_slice()),
        (FinishReason::Stop, &free.tokens[..3])
    );
    assert_eq!(calls, 3);
}

#[test]
fn saved_checkpoint_reloads_with_identical_logits() {
    let src = fixture_dir("qwen2_tied_gqa");
    let model = Model::from_dir(&src, DType::F32, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (batch, _) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let out = dir.path().join("f32");
    model.save(&out, None, Some(&src)).unwrap();
    let back = Model::from_dir(&out, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        to_vec(&model.logits(&batch).unwrap()),
        to_vec(&back.logits(&batch).unwrap())
    );
    assert!(
        out.join("generation_config.json").is_file(),
        "side files are copied"
    );

    let out = dir.path().join("bf16");
    model.save(&out, Some(DType::BF16), None).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "bfloat16");
    let saved =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(
        !saved.contains_key("lm_head.weight"),
        "tied embeddings are saved once"
    );
    assert!(saved.values().all(|t| t.dtype() == DType::BF16));
    assert_eq!(saved.len(), model.vars().len());
}

#[test]
fn bad_checkpoints_give_errors_naming_tensor_and_file() {
    let src = fixture_dir("llama3_ropescaled_gqa");
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |tensors: &std::collections::HashMap<String, Tensor>| {
        std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
        candle_core::safetensors::save(tensors, dir.path().join("model.safetensors")).unwrap();
        Model::from_dir(dir.path(), DType::F32, &Device::Cpu)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let mut missing = tensors.clone();
    missing.remove("model.layers.1.mlp.up_proj.weight");
    let e = write(&missing);
    assert!(
        e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("model.safetensors"),
        "{e}"
    );

    let mut wrong = tensors.clone();
    wrong.insert(
        "lm_head.weight".into(),
        Tensor::zeros((3, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = write(&wrong);
    assert!(
        e.contains("lm_head.weight") && e.contains("[3, 32]") && e.contains("model.safetensors"),
        "{e}"
    );

    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}"#,
    )
    .unwrap();
    let e = format!(
        "{:#}",
        Model::from_dir(dir.path(), DType::F32, &Device::Cpu)
            .map(|_| ())
            .unwrap_err()
    );
    assert!(
        e.contains("GPT2LMHeadModel") && e.contains("config.json"),
        "{e}"
    );
}

#[test]
fn frozen_copy_does_not_follow_updates() {
    let model = tiny("Qwen2ForCausalLM", true, 2, 8);
    let frozen = model.frozen_copy().unwrap();
    let (batch, _) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let before = to_vec(&frozen.logits(&batch).unwrap());
    let var = model.var("model.norm.weight").unwrap();
    var.set(&(var.as_tensor() * 2.0).unwrap()).unwrap();
    assert_eq!(to_vec(&frozen.logits(&batch).unwrap()), before);
    assert_ne!(to_vec(&model.logits(&batch).unwrap()), before);
}

#[test]
fn bf16_model_is_close_to_f32() {
    let f32m = tiny("LlamaForCausalLM", true, 2, 9);
    let tensors = f32m
        .vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
        .collect();
    let bf16m = Model::from_tensors(
        f32m.config.clone(),
        tensors,
        DType::BF16,
        &Device::Cpu,
        &|_| String::new(),
    )
    .unwrap();
    let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let opts = LogprobOptions::default();
    let (a, _) = f32m.token_logprobs(&batch, start, 1.0, &opts).unwrap();
    let (b, _) = bf16m.token_logprobs(&batch, start, 1.0, &opts).unwrap();
    let d = max_abs_diff(&to_vec(&a), &to_vec(&b));
    assert!(d < 0.15, "bf16 log-probs differ from f32 by {d}");
    let g = bf16m
        .generate(&prompts(), &[1, 2, 3], &sampling(0.7, 5), None)
        .unwrap();
    assert!(g.iter().all(|g| g.tokens.len() == 5));
}

/// The no-graph path (weight-streaming `matmul_nt_inference`) and the graph path (candle's
/// matmul) compute the same log-probs, for f32 and bf16 weights.
#[test]
fn inference_matmul_path_matches_the_autograd_path() {
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 3e-2)] {
        let f32_model = tiny("Qwen2ForCausalLM", true, 2, 4);
        let tensors = f32_model
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let model = Model::from_tensors(
            f32_model.config.clone(),
            tensors,
            dtype,
            &Device::Cpu,
            &|_| "test".into(),
        )
        .unwrap();
        let opts = LogprobOptions::default();
        let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
        let (lp, en) = model.token_logprobs(&batch, start, 0.7, &opts).unwrap();
        let (lp_t, en_t) = model
            .token_logprobs_tracked(&batch, start, 0.7, &opts)
            .unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let d = max_abs_diff(&flat(&lp), &flat(&lp_t)).max(max_abs_diff(&flat(&en), &flat(&en_t)));
        assert!(
            d < tol,
            "{dtype:?}: inference vs autograd log-probs differ by {d}"
        );
    }
}

/// The fused attention kernel (default) and the materialised matmul + mask + softmax path give
/// the same log-probs, gradients and sampled tokens, with left-padded prompts, right-padded
/// responses and a KV cache that is compacted mid-generation.
#[test]
fn fused_attention_matches_the_materialised_path() {
    let fused = tiny("Qwen2ForCausalLM", true, 2, 6);
    let tensors = fused
        .vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
        .collect();
    let plain = Model::from_tensors(
        fused.config.clone(),
        tensors,
        DType::F32,
        &Device::Cpu,
        &|_| "test".into(),
    )
    .unwrap()
    .with_fused_attention(false);
    let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let opts = LogprobOptions {
        chunk_rows: 4,
        recompute_layers: false,
    };
    let loss = |lp: &Tensor, en: &Tensor| Ok((lp.sum_all()? + (en.sum_all()? * 0.3)?)?);
    let (lf, gf) = fused
        .logprobs_with_grad(&batch, start, 0.8, &opts, loss)
        .unwrap();
    let (lpl, gp) = plain
        .logprobs_with_grad(&batch, start, 0.8, &opts, loss)
        .unwrap();
    assert!(
        (lf - lpl).abs() < 1e-4 * lpl.abs().max(1.0),
        "loss {lf} vs {lpl}"
    );
    for ((name, vf), (_, vp)) in fused.vars().into_iter().zip(plain.vars()) {
        let (a, b) = (
            to_vec(gf.get(vf.as_tensor()).unwrap()),
            to_vec(gp.get(vp.as_tensor()).unwrap()),
        );
        let d = max_abs_diff(&a, &b);
        assert!(
            d <= 1e-4 * max_abs(&b).max(1e-3),
            "{name}: gradients differ by {d} (scale {})",
            max_abs(&b)
        );
    }
    let mut gen = sampling(0.9, 10);
    gen.eos_token_ids = vec![4, 5, 6];
    let a = fused
        .generate(&prompts(), &[21, 22, 23], &gen, None)
        .unwrap();
    let b = plain
        .generate(&prompts(), &[21, 22, 23], &gen, None)
        .unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.tokens, y.tokens, "row {i}: sampled tokens");
        assert!(
            max_abs_diff(&x.logprobs, &y.logprobs) < 1e-4,
            "row {i}: sampled log-probs"
        );
    }
}

/// bf16 products (`MatmulPrecision::Bf16`): log-probs and every gradient stay close to the f32
/// model's (bf16 operands carry ~3 significant digits), the no-graph and graph paths agree
/// exactly, and a frozen copy keeps the setting.
#[test]
fn bf16_matmul_precision_is_close_to_f32_in_values_and_gradients() {
    use oneshot_model::MatmulPrecision;
    let f32m = tiny("Qwen2ForCausalLM", true, 2, 12);
    let tensors = f32m
        .vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
        .collect();
    let bf = Model::from_tensors(
        f32m.config.clone(),
        tensors,
        DType::F32,
        &Device::Cpu,
        &|_| "test".into(),
    )
    .unwrap()
    .with_matmul_precision(MatmulPrecision::Bf16);
    assert_eq!(
        bf.frozen_copy().unwrap().matmul_precision(),
        MatmulPrecision::Bf16
    );
    let (batch, start) = Batch::prompt_response(&prompts(), &responses(), 0).unwrap();
    let opts = LogprobOptions {
        chunk_rows: 4,
        recompute_layers: true,
    };
    let (lp_f, _) = f32m.token_logprobs(&batch, start, 0.8, &opts).unwrap();
    let (lp_b, en_b) = bf.token_logprobs(&batch, start, 0.8, &opts).unwrap();
    let d = max_abs_diff(&to_vec(&lp_f), &to_vec(&lp_b));
    assert!(
        d > 0.0 && d < 0.05,
        "bf16 products change log-probs by {d} (expected small, nonzero)"
    );
    let (lp_t, en_t) = bf
        .token_logprobs_tracked(&batch, start, 0.8, &opts)
        .unwrap();
    assert!(max_abs_diff(&to_vec(&lp_b), &to_vec(&lp_t)) < 1e-5);
    assert!(max_abs_diff(&to_vec(&en_b), &to_vec(&en_t)) < 1e-5);

    let loss = |lp: &Tensor, en: &Tensor| Ok((lp.sum_all()? + (en.sum_all()? * 0.3)?)?);
    let (_, gf) = f32m
        .logprobs_with_grad(&batch, start, 0.8, &opts, loss)
        .unwrap();
    let (_, gb) = bf
        .logprobs_with_grad(&batch, start, 0.8, &opts, loss)
        .unwrap();
    for ((name, vf), (_, vb)) in f32m.vars().into_iter().zip(bf.vars()) {
        let (a, b) = (
            to_vec(gf.get(vf.as_tensor()).unwrap()),
            to_vec(gb.get(vb.as_tensor()).unwrap()),
        );
        let num: f32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt();
        let den: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            num <= 0.03 * den,
            "{name}: relative gradient difference {}",
            num / den
        );
    }
}

#[test]
fn bf16_decoding_agrees_with_the_bf16_forward() {
    use oneshot_model::MatmulPrecision;
    let model = tiny("Qwen2ForCausalLM", true, 2, 5).with_matmul_precision(MatmulPrecision::Bf16);
    // 40 rows: the prefill and the first steps run with enough rows for the packed kernels
    // (the weights packed once for the whole generation), then with >= BF16_MIN_ROWS rows
    // (both operands rounded); as rows stop on eos, later steps fall below it (f32
    // activations, bf16 weights).
    let prompts: Vec<Vec<u32>> = (0..40u32)
        .map(|i| (0..1 + i % 5).map(|j| 3 + (i * 7 + j * 11) % 60).collect())
        .collect();
    let seeds: Vec<u64> = (0..40).map(|i| 500 + i).collect();
    let mut opts = sampling(0.9, 12);
    opts.eos_token_ids = vec![4, 5, 6, 7];
    let gens = model.generate(&prompts, &seeds, &opts, None).unwrap();
    let lengths: Vec<usize> = gens.iter().map(|g| g.tokens.len()).collect();
    assert!(
        lengths.iter().filter(|&&l| l < 12).count() >= 5,
        "too few rows stopped early: {lengths:?}"
    );
    let responses: Vec<Vec<u32>> = gens.iter().map(|g| g.tokens.clone()).collect();
    let (batch, start) = Batch::prompt_response(&prompts, &responses, 0).unwrap();
    let (lp, _) = model
        .token_logprobs(&batch, start, 0.9, &LogprobOptions::default())
        .unwrap();
    let lp = lp.to_vec2::<f32>().unwrap();
    for (i, g) in gens.iter().enumerate() {
        // The forward rounds activations to bf16 at every projection; decoding below 16 rows
        // does not, so the two agree to bf16 precision, not exactly.
        let d = max_abs_diff(&g.logprobs, &lp[i][..g.tokens.len()]);
        assert!(
            d < 0.05,
            "row {i}: bf16 decoding log-probs differ from the bf16 forward by {d}"
        );
    }
}

#[test]
fn continuous_batching_gives_each_sequence_the_same_tokens() {
    let model = tiny("Qwen2ForCausalLM", true, 2, 5);
    // Prompts of different lengths (1-9 tokens), some rows stopping early on eos: with at most
    // 3 running, rows join while others are mid-generation, with shorter and longer prompts
    // than the running ones (both paddings of the time axis), and the cache front is dropped.
    let prompts: Vec<Vec<u32>> = (0..11u32)
        .map(|i| {
            (0..1 + (i * 5) % 9)
                .map(|j| 3 + (i * 13 + j * 7) % 60)
                .collect()
        })
        .collect();
    let seeds: Vec<u64> = (0..11).map(|i| 900 + i).collect();
    let mut opts = sampling(0.9, 40);
    opts.eos_token_ids = vec![4, 5];
    let all = model.generate(&prompts, &seeds, &opts, None).unwrap();
    let lengths: Vec<usize> = all.iter().map(|g| g.tokens.len()).collect();
    assert!(
        lengths.iter().any(|&l| l < 40) && lengths.contains(&40),
        "{lengths:?}"
    );
    for cap in [1, 3, 7] {
        let cont = model
            .generate_continuous(&prompts, &seeds, &opts, cap, None)
            .unwrap();
        for (i, (a, c)) in all.iter().zip(&cont).enumerate() {
            assert_eq!(a.tokens, c.tokens, "cap {cap}, sequence {i}: tokens");
            assert_eq!(a.finish, c.finish, "cap {cap}, sequence {i}: finish");
            let d = max_abs_diff(&a.logprobs, &c.logprobs);
            assert!(d < 1e-4, "cap {cap}, sequence {i}: log-probs differ by {d}");
        }
    }
}
