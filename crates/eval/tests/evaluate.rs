//! The in-memory entry point (what the trainer's validation calls): results independent of the
//! batch size and of the subset, dependent on the seed; greedy is deterministic; the chat
//! template; agreement with the file-writing runner.
mod common;

use common::*;
use oneshot_data::checker::VerifyChecker;
use oneshot_data::prompt::{PromptTemplate, TRAINING_SUFFIX};
use oneshot_data::subset::Limit;
use oneshot_eval::{
    evaluate, evaluate_samples, run_benchmarks, DecodingOverrides, EvalSample, RunOptions, Silent,
};

fn texts(samples: &[EvalSample]) -> Vec<(usize, usize, String, usize)> {
    samples
        .iter()
        .map(|s| {
            (
                s.record.idx,
                s.record.sample,
                s.record.response.clone(),
                s.record.n_tokens.unwrap(),
            )
        })
        .collect()
}

#[test]
fn samples_do_not_depend_on_batch_size_or_subset_but_on_the_seed() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    let amc = |limit, seed| {
        spec(
            "amc23",
            DecodingOverrides {
                seed: Some(seed),
                samples: Some(3),
                ..short(8)
            },
            Some(limit),
        )
    };
    let (one, summary) =
        evaluate_samples(&tiny.generator(1), &amc(Limit::First(2), 0), &Silent).unwrap();
    assert_eq!(one.len(), 6);
    assert_eq!(
        (summary.problems, summary.samples, summary.metric.as_str()),
        (2, 6, "avg@3")
    );
    let (five, _) =
        evaluate_samples(&tiny.generator(5), &amc(Limit::First(2), 0), &Silent).unwrap();
    assert_eq!(texts(&one), texts(&five), "batch size changed the samples");
    assert_eq!(one, five);

    // A problem drawn into a different subset (so sitting elsewhere in other batches) gets the
    // same samples: find a drawn subset of 3 that contains problem 0 or 1 but not both.
    let drawn = (0..)
        .map(|seed| Limit::Seeded { n: 3, seed })
        .find(|l| l.select(40).iter().filter(|&&i| i < 2).count() == 1)
        .unwrap();
    let (subset, _) = evaluate_samples(&tiny.generator(4), &amc(drawn, 0), &Silent).unwrap();
    let shared: Vec<&EvalSample> = subset.iter().filter(|o| o.record.idx < 2).collect();
    assert_eq!(shared.len(), 3);
    for s in shared {
        assert_eq!(
            Some(s),
            one.iter().find(|o| o.record.key() == s.record.key()),
            "sample changed with the subset"
        );
    }

    // Another run seed gives other samples.
    let (reseeded, _) =
        evaluate_samples(&tiny.generator(5), &amc(Limit::First(2), 1), &Silent).unwrap();
    assert_ne!(texts(&one), texts(&reseeded));
}

#[test]
fn evaluate_matches_the_runner_and_greedy_is_deterministic() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    let math = || spec("math500", short(12), Some(Limit::First(3)));
    let summary = evaluate(&tiny.generator(2), &math(), &Silent).unwrap();
    assert_eq!(
        (summary.problems, summary.samples, summary.metric.as_str()),
        (3, 3, "accuracy")
    );
    assert_eq!(summary.pass_at_k.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        out: dir.path().into(),
        name: "m".into(),
        model: "m".into(),
        dtype: "f32".into(),
        overwrite: false,
    };
    let report = run_benchmarks(
        &tiny.generator(3),
        &[math()],
        &VerifyChecker::default(),
        &options,
        &Silent,
    )
    .unwrap();
    assert_eq!(report.summary.benchmarks, vec![summary]);
    // Greedy with a different seed is the same decoding.
    let mut reseeded = math();
    reseeded.decoding.seed = 5;
    let (a, _) = evaluate_samples(&tiny.generator(3), &math(), &Silent).unwrap();
    let (b, _) = evaluate_samples(&tiny.generator(3), &reseeded, &Silent).unwrap();
    assert_eq!(texts(&a), texts(&b));
}

#[test]
fn chat_template_prompts_use_the_models_template_and_the_training_suffix() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    let mut s = spec("math500", short(4), Some(Limit::First(1)));
    s.template = PromptTemplate::Chat;
    let (samples, _) = evaluate_samples(&tiny.generator(1), &s, &Silent).unwrap();
    let prompt = &samples[0].record.prompt;
    let expected = format!(
        "<|im_start|>user\n{} {TRAINING_SUFFIX}<|im_end|>\n<|im_start|>assistant\n",
        s.problems[0].question
    );
    assert_eq!(prompt, &expected);

    let no_chat = oneshot_eval::Generator::new(&tiny.model, &tiny.tokenizer);
    let err = evaluate(&no_chat, &s, &Silent).unwrap_err();
    assert!(format!("{err:#}").contains("chat template"), "{err:#}");
}

#[test]
fn stop_tokens_end_generation_and_are_not_in_the_text() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    // The harness stop tokens the tokenizer has, plus generation_config's eos.
    let g = tiny.generator(1);
    let ids: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
        .iter()
        .map(|t| tiny.tokenizer.token_to_id(t).unwrap())
        .collect();
    for id in &ids {
        assert!(g.eos_ids().contains(id));
    }
    // Long sampled generations at a high temperature: some stop at a stop token before the limit.
    let s = spec(
        "amc23",
        DecodingOverrides {
            temperature: Some(3.0),
            samples: Some(16),
            ..short(48)
        },
        Some(Limit::First(2)),
    );
    let (samples, summary) = evaluate_samples(&tiny.generator(16), &s, &Silent).unwrap();
    let stopped: Vec<&EvalSample> = samples
        .iter()
        .filter(|s| s.finish == oneshot_model::FinishReason::Eos)
        .collect();
    assert!(!stopped.is_empty(), "no sample hit a stop token");
    for s in &stopped {
        assert!(s.record.n_tokens.unwrap() < 48 || s.record.truncated == Some(false));
        assert!(
            !s.record.response.contains("<|im_end|>")
                && !s.record.response.contains("<|endoftext|>")
        );
    }
    let truncated = samples
        .iter()
        .filter(|s| s.record.truncated == Some(true))
        .count();
    assert_eq!(
        summary.truncation_rate,
        Some(100.0 * truncated as f64 / samples.len() as f64)
    );
}
