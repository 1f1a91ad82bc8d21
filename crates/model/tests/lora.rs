//! LoRA against PEFT on the committed fixtures (scripts/make_lora_fixtures.py): logits,
//! log-probs and every adapter gradient of a PEFT-saved adapter loaded by us; plus the
//! properties the trainer relies on (fresh adapters start at the base, the base is shared
//! and frozen, merging, dropout masks repeating across a recomputed layer).
mod common;
use candle_core::{DType, Device, Tensor};
use common::*;
use oneshot_model::lora::{LoraConfig, Target};
use oneshot_model::{Batch, LogprobOptions, Model};

/// (fixture, base fixture)
const LORA_FIXTURES: [(&str, &str); 4] = [
    ("qwen2_r8", "qwen2_tied_gqa"),
    ("qwen2_r1_rslora", "qwen2_untied_mha"),
    ("llama_r8_rslora", "llama3_ropescaled_gqa"),
    ("llama_r1", "llama_bias_tied"),
];

struct LoraFixture {
    base: Fixture,
    expected: std::collections::HashMap<String, Tensor>,
    batch: Batch,
}

fn load(name: &str, base: &str) -> LoraFixture {
    let mut base = load_fixture(base);
    let dir = fixture_dir("lora").join(name);
    base.model
        .load_lora(&dir)
        .unwrap_or_else(|e| panic!("{name}: loading the PEFT adapter: {e:#}"));
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let batch = batch_from(
        &base.expected["input_ids"],
        &base.expected["attention_mask"],
    );
    LoraFixture {
        base,
        expected,
        batch,
    }
}

fn masked_max_diff(a: &Tensor, b: &Tensor, batch: &Batch) -> f32 {
    let (a, b) = (to_vec(a), to_vec(b));
    let v = a.len() / batch.attention_mask.len();
    let mut worst = 0f32;
    for (row, &m) in batch.attention_mask.iter().enumerate() {
        if m == 1 {
            worst = worst.max(max_abs_diff(
                &a[row * v..(row + 1) * v],
                &b[row * v..(row + 1) * v],
            ));
        }
    }
    worst
}

#[test]
fn peft_adapters_give_peft_logits_and_logprobs() {
    for (name, base) in LORA_FIXTURES {
        let f = load(name, base);
        let m = &f.base.model;
        let d = masked_max_diff(
            &m.logits(&f.batch).unwrap(),
            &f.expected["logits"],
            &f.batch,
        );
        assert!(d < 1e-4, "{name}: max |logit diff| {d}");
        // The adapters matter: the base's logits are far from these.
        let base_d = masked_max_diff(
            &m.without_adapters().logits(&f.batch).unwrap(),
            &f.expected["logits"],
            &f.batch,
        );
        assert!(
            base_d > 1e-2,
            "{name}: adapters change logits by only {base_d}"
        );
        let (lp, en) = m
            .token_logprobs(
                &f.batch,
                f.base.response_start,
                f.base.temperature,
                &LogprobOptions::default(),
            )
            .unwrap();
        let dl = max_abs_diff(&to_vec(&lp), &to_vec(&f.expected["logp"]));
        let de = max_abs_diff(&to_vec(&en), &to_vec(&f.expected["entropy"]));
        assert!(dl < 1e-4 && de < 1e-4, "{name}: logp {dl}, entropy {de}");
    }
}

fn check_adapter_grads(
    name: &str,
    f: &LoraFixture,
    grads: &candle_core::backprop::GradStore,
    how: &str,
) {
    let m = &f.base.model;
    let vars = m.vars();
    assert_eq!(
        vars.len(),
        f.expected.keys().filter(|k| k.starts_with("grad.")).count(),
        "{name}: adapter count differs from PEFT's"
    );
    for (pname, var) in vars {
        let want = to_vec(
            f.expected
                .get(&format!("grad.{pname}"))
                .unwrap_or_else(|| panic!("{name}: PEFT has no gradient for {pname}")),
        );
        let got = to_vec(
            grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} {how}: no gradient for {pname}")),
        );
        let rel = max_abs_diff(&got, &want) / max_abs(&want).max(1e-12);
        assert!(rel < 1e-3, "{name} {how}: gradient of {pname} off by {rel}");
    }
    for (pname, var) in m.base_vars() {
        assert!(
            grads.get(var.as_tensor()).is_none(),
            "{name} {how}: the frozen base parameter {pname} got a gradient"
        );
    }
}

#[test]
fn adapter_gradients_match_peft_with_and_without_recompute() {
    for (name, base) in LORA_FIXTURES {
        let f = load(name, base);
        let w = f.base.entropy_weight;
        for recompute_layers in [false, true] {
            let opts = LogprobOptions {
                chunk_rows: 4,
                recompute_layers,
            };
            let (_, grads) = f
                .base
                .model
                .logprobs_with_grad(
                    &f.batch,
                    f.base.response_start,
                    f.base.temperature,
                    &opts,
                    |lp, en| Ok((lp.sum_all()? + (en.sum_all()? * w)?)?),
                )
                .unwrap();
            let how = if recompute_layers {
                "recompute"
            } else {
                "staged"
            };
            check_adapter_grads(name, &f, &grads, how);
        }
        let (lp, en) = f
            .base
            .model
            .token_logprobs_tracked(
                &f.batch,
                f.base.response_start,
                f.base.temperature,
                &LogprobOptions::default(),
            )
            .unwrap();
        let loss = (lp.sum_all().unwrap() + (en.sum_all().unwrap() * w).unwrap()).unwrap();
        check_adapter_grads(name, &f, &loss.backward().unwrap(), "tracked");
    }
}

#[test]
fn saved_adapters_load_back_identically_and_merge_to_the_same_model() {
    let (name, base) = LORA_FIXTURES[0];
    let f = load(name, base);
    let dir = tempfile::tempdir().unwrap();
    f.base.model.save_lora(dir.path(), Some(base)).unwrap();
    let mut again = load_fixture(base).model;
    again.load_lora(dir.path()).unwrap();
    let ours: Vec<_> = f.base.model.vars();
    let back: Vec<_> = again.vars();
    assert_eq!(ours.len(), back.len());
    for ((n1, v1), (n2, v2)) in ours.iter().zip(&back) {
        assert_eq!(n1, n2);
        assert_eq!(to_vec(v1.as_tensor()), to_vec(v2.as_tensor()), "{n1}");
    }
    let merged = f.base.model.merged().unwrap();
    assert!(merged.lora().is_none());
    let d = masked_max_diff(
        &merged.logits(&f.batch).unwrap(),
        &f.expected["logits"],
        &f.batch,
    );
    assert!(d < 1e-4, "merged logits off by {d}");
    // Saving an adapted model writes the merged weights (what `oneshot export --merge` does).
    let out = tempfile::tempdir().unwrap();
    f.base
        .model
        .save(&out.path().join("m"), Some(DType::F32), None)
        .unwrap();
    let reloaded = Model::from_dir(&out.path().join("m"), DType::F32, &Device::Cpu).unwrap();
    let d = masked_max_diff(
        &reloaded.logits(&f.batch).unwrap(),
        &f.expected["logits"],
        &f.batch,
    );
    assert!(d < 1e-4, "saved merged model off by {d}");
}

fn all_linear(r: usize, dropout: f64) -> LoraConfig {
    LoraConfig {
        r,
        alpha: 2.0 * r as f64,
        dropout,
        targets: Target::ALL.to_vec(),
        use_rslora: false,
    }
}

#[test]
fn fresh_adapters_start_at_the_base_and_share_its_storage() {
    let mut m = load_fixture("qwen2_tied_gqa").model;
    let batch = batch_from(
        &load_fixture("qwen2_tied_gqa").expected["input_ids"],
        &load_fixture("qwen2_tied_gqa").expected["attention_mask"],
    );
    let before = m.logits(&batch).unwrap();
    m.add_lora(all_linear(4, 0.0), 3).unwrap();
    let after = m.logits(&batch).unwrap();
    assert!(masked_max_diff(&before, &after, &batch) < 1e-5);
    // A is Kaiming-uniform (bound 1/sqrt(in)), B is zero.
    let lora = m.lora().unwrap();
    let ad = lora.adapter(0, Target::QProj).unwrap();
    let a = to_vec(ad.a.as_tensor());
    let bound = 1.0 / (m.config.hidden_size as f32).sqrt();
    assert!(a.iter().all(|x| x.abs() <= bound) && max_abs(&a) > 0.5 * bound);
    assert!(to_vec(ad.b.as_tensor()).iter().all(|&x| x == 0.0));
    // The reference is the same storage: every base tensor is the policy's own.
    let reference = m.without_adapters();
    for ((n1, v1), (_, v2)) in m.base_vars().iter().zip(reference.vars().iter()) {
        assert_eq!(v1.as_tensor().id(), v2.as_tensor().id(), "{n1} was copied");
    }
    assert_eq!(m.vars().len(), 2 * 7 * m.config.num_hidden_layers);
}

/// Per update call: the loss and every adapter gradient.
type Updates = Vec<(f32, Vec<Vec<f32>>)>;

/// Two update forwards and one detached pass of an adapted model with deterministic non-zero
/// B and seeded dropout.
fn dropout_run(recompute_layers: bool, dropout: f64) -> (Updates, f32) {
    let f = load_fixture("llama3_ropescaled_gqa");
    let batch = batch_from(&f.expected["input_ids"], &f.expected["attention_mask"]);
    let mut m = f.model;
    m.add_lora(all_linear(4, dropout), 1).unwrap();
    for (n, v) in m.vars() {
        if n.contains("lora_B") {
            let vals: Vec<f32> = (0..v.elem_count())
                .map(|i| 0.3 * (i as f32 * 0.7 + 0.1).sin())
                .collect();
            v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    m.lora_mut().unwrap().set_dropout_state(11, 0);
    let opts = LogprobOptions {
        chunk_rows: 4,
        recompute_layers,
    };
    let mut out = Vec::new();
    for _ in 0..2 {
        let (loss, grads) = m
            .logprobs_with_grad(&batch, f.response_start, 0.7, &opts, |lp, _| {
                Ok(lp.sum_all()?)
            })
            .unwrap();
        let g = m
            .vars()
            .iter()
            .map(|(_, v)| to_vec(grads.get(v.as_tensor()).unwrap()))
            .collect();
        out.push((loss, g));
    }
    let (detached, _) = m
        .token_logprobs(&batch, f.response_start, 0.7, &opts)
        .unwrap();
    (out, detached.sum_all().unwrap().to_scalar::<f32>().unwrap())
}

#[test]
fn dropout_masks_repeat_in_a_recomputed_pass_and_change_between_updates() {
    let (plain, plain_det) = dropout_run(false, 0.3);
    let (recomputed, _) = dropout_run(true, 0.3);
    // The recomputed layers see the first forward's masks: same loss, same gradients.
    for ((l1, g1), (l2, g2)) in plain.iter().zip(&recomputed) {
        assert!((l1 - l2).abs() < 1e-4 * l1.abs().max(1.0), "{l1} vs {l2}");
        for (a, b) in g1.iter().zip(g2) {
            let rel = max_abs_diff(a, b) / max_abs(a).max(1e-12);
            assert!(rel < 1e-4, "recomputed gradient off by {rel}");
        }
    }
    // Each update draws fresh masks; the detached passes (rollouts, old/ref log-probs) use none.
    assert_ne!(
        plain[0].0, plain[1].0,
        "dropout masks did not change between updates"
    );
    assert!((plain[0].0 - plain_det).abs() > 1e-3);
    let (no_dropout, det) = dropout_run(false, 0.0);
    assert!((no_dropout[0].0 - det).abs() < 1e-4 * det.abs().max(1.0));
    assert_eq!(no_dropout[0].0, no_dropout[1].0);
}

#[test]
fn decoding_with_merged_adapters_samples_what_the_adapted_model_scores() {
    let (name, base) = LORA_FIXTURES[2];
    let f = load(name, base);
    let m = &f.base.model;
    let opts = oneshot_model::GenerateOptions {
        sampler: oneshot_model::SamplerConfig::greedy(),
        max_new_tokens: 6,
        eos_token_ids: vec![],
        stop_sequences: vec![],
        pad_token_id: 0,
    };
    let prompts = vec![vec![1u32, 50, 51, 52], vec![1, 3]];
    let gens = m.generate(&prompts, &[0, 0], &opts, None).unwrap();
    // Greedy tokens are the argmax of the adapted model's own logits at each position.
    for (p, g) in prompts.iter().zip(&gens) {
        let mut ids = p.clone();
        for &tok in &g.tokens {
            let batch = Batch::new(ids.clone(), vec![1; ids.len()], 1, ids.len()).unwrap();
            let logits = to_vec(&m.logits(&batch).unwrap());
            let v = m.config.vocab_size;
            let last = &logits[(ids.len() - 1) * v..];
            let best = (0..v)
                .max_by(|&a, &b| last[a].partial_cmp(&last[b]).unwrap())
                .unwrap() as u32;
            assert_eq!(
                tok, best,
                "{name}: greedy token off the adapted model's argmax"
            );
            ids.push(tok);
        }
    }
    // And they differ from the base's (the adapters are in play while decoding).
    let base_gens = m
        .without_adapters()
        .generate(&prompts, &[0, 0], &opts, None)
        .unwrap();
    assert!(gens
        .iter()
        .zip(&base_gens)
        .any(|(a, b)| a.tokens != b.tokens));
}
