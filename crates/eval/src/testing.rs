//! A tiny random Qwen2 model with a byte-level tokenizer, written to a directory in the HF
//! layout: what the tests of this crate and of the `oneshot` binary evaluate. It can encode any
//! text (every byte is a token) and it knows the Qwen chat special tokens.

use std::path::Path;

use anyhow::{anyhow, Result};
use candle_core::{DType, Device};
use oneshot_model::{Model, ModelConfig};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

/// Special tokens of the test tokenizer, after the 256 byte tokens.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// A Qwen-style chat template (system turn, user turn, assistant header).
const CHAT_TEMPLATE: &str =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A byte-level BPE tokenizer without merges: one token per byte, then [`SPECIAL_TOKENS`].
pub fn byte_tokenizer() -> Result<tokenizers::Tokenizer> {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let vocab: Vocab = alphabet
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .build()
        .map_err(|e| anyhow!("building BPE: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tok.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tok.add_special_tokens(specials)
        .map_err(|e| anyhow!("adding special tokens: {e}"))?;
    Ok(tok)
}

/// Writes a random Qwen2 model (hidden 32, 2 layers, weights N(0, 0.2^2) so its outputs are not
/// flat) with [`byte_tokenizer`], a chat template and a generation config whose eos is
/// `<|endoftext|>` into `dir`.
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<()> {
    let tokenizer = byte_tokenizer()?;
    let vocab_size = tokenizer.get_vocab_size(true);
    let config = ModelConfig::from_json(serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 4096, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": true, "torch_dtype": "float32"
    }))?;
    let model = Model::random_with_std(config, DType::F32, &Device::Cpu, seed, 0.2)?;
    model.save(dir, None, None)?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow!("saving the test tokenizer: {e}"))?;
    let token_id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| anyhow!("{t} missing from the test tokenizer"))
    };
    let generation = serde_json::json!({ "eos_token_id": token_id("<|endoftext|>")?, "bos_token_id": token_id("<|endoftext|>")? });
    std::fs::write(dir.join("generation_config.json"), generation.to_string())?;
    let tokenizer_config = serde_json::json!({
        "chat_template": CHAT_TEMPLATE, "eos_token": "<|im_end|>", "bos_token": null
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        tokenizer_config.to_string(),
    )?;
    Ok(())
}

/// What a finished benchmark directory of a run should hold.
#[derive(Debug, Clone)]
pub struct ExpectedBenchmark {
    pub name: String,
    /// Problem indices evaluated.
    pub problems: Vec<usize>,
    pub samples: usize,
    pub max_new_tokens: usize,
}

/// `1 - C(n-c, k) / C(n, k)` as a ratio of falling products, independently of the data crate's
/// formula.
fn pass_at_k_reference(n: usize, c: usize, k: usize) -> f64 {
    if n - c < k {
        return 1.0;
    }
    1.0 - (0..k)
        .map(|i| (n - c - i) as f64 / (n - i) as f64)
        .product::<f64>()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Checks every file of a run directory written by the runner against its sample records:
/// counts, fields, and every summary number recomputed from the records. Panics with a message
/// naming the file and the field on any difference. Returns each benchmark's sample lines.
pub fn check_run_dir(
    out: &Path,
    run_name: &str,
    expected: &[ExpectedBenchmark],
) -> Vec<Vec<serde_json::Value>> {
    use serde_json::Value;
    let read_json = |path: &Path| -> Value {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    };
    let top = read_json(&out.join("summary.json"));
    assert_eq!(top["name"], run_name, "summary.json name");
    let top_benchmarks = top["benchmarks"]
        .as_array()
        .expect("summary.json: benchmarks is a list");
    assert_eq!(
        top_benchmarks.len(),
        expected.len(),
        "summary.json: one entry per benchmark"
    );
    let top_table = std::fs::read_to_string(out.join("table.md")).expect("table.md");
    assert!(
        top_table.starts_with(
            "| model | MATH500 | AIME24 | AMC23 | Minerva | OlympiadB | AIME25 | Avg |"
        ),
        "{top_table}"
    );
    let mut all_lines = Vec::new();
    for (b, want) in expected.iter().enumerate() {
        let dir = out.join(&want.name);
        let path = dir.join("samples.jsonl");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            text.ends_with('\n'),
            "{}: last line unterminated",
            path.display()
        );
        let lines: Vec<Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display()))
            })
            .collect();
        assert_eq!(
            lines.len(),
            want.problems.len() * want.samples,
            "{}: line count",
            path.display()
        );
        // Lines are in (problem, sample) order and cover each pair exactly once.
        let keys: Vec<(usize, usize)> = lines
            .iter()
            .map(|l| {
                (
                    l["idx"].as_u64().unwrap() as usize,
                    l["sample"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let wanted: Vec<(usize, usize)> = want
            .problems
            .iter()
            .flat_map(|&i| (0..want.samples).map(move |s| (i, s)))
            .collect();
        assert_eq!(keys, wanted, "{}: (idx, sample) pairs", path.display());
        let fields = [
            "benchmark",
            "idx",
            "sample",
            "prompt",
            "response",
            "gold",
            "extracted",
            "correct",
            "n_tokens",
            "truncated",
            "finish_reason",
        ];
        for (i, l) in lines.iter().enumerate() {
            let at = format!("{}:{}", path.display(), i + 1);
            let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, fields, "{at}: fields");
            assert_eq!(l["benchmark"], want.name.as_str(), "{at}: benchmark");
            assert!(
                l["prompt"].as_str().is_some_and(|p| !p.is_empty()),
                "{at}: prompt"
            );
            assert!(
                l["response"].is_string() && l["gold"].as_str().is_some_and(|g| !g.is_empty()),
                "{at}: response/gold"
            );
            assert!(
                l["extracted"].is_null() || l["extracted"].is_string(),
                "{at}: extracted"
            );
            assert!(l["correct"].is_boolean(), "{at}: correct");
            let n = l["n_tokens"].as_u64().unwrap() as usize;
            assert!((1..=want.max_new_tokens).contains(&n), "{at}: n_tokens {n}");
            let finish = l["finish_reason"].as_str().unwrap();
            assert!(
                ["eos", "stop", "length"].contains(&finish),
                "{at}: finish_reason {finish}"
            );
            assert_eq!(
                l["truncated"].as_bool().unwrap(),
                finish == "length",
                "{at}: truncated vs finish_reason"
            );
            if finish == "length" {
                assert_eq!(
                    n, want.max_new_tokens,
                    "{at}: a truncated response has max tokens"
                );
            }
        }

        // Every number of the summary, recomputed from the lines.
        let summary_file = read_json(&dir.join("summary.json"));
        assert_eq!(summary_file["name"], run_name);
        let s = &summary_file["benchmarks"][0];
        assert_eq!(
            &top_benchmarks[b], s,
            "summary.json entry of {} differs from {}/summary.json",
            want.name, want.name
        );
        let at = dir.join("summary.json").display().to_string();
        let per_problem: Vec<(usize, usize)> = want
            .problems
            .iter()
            .map(|&p| {
                let mine: Vec<&Value> = lines.iter().filter(|l| l["idx"] == p).collect();
                (
                    mine.len(),
                    mine.iter().filter(|l| l["correct"] == true).count(),
                )
            })
            .collect();
        let n = lines.len() as f64;
        let correct: usize = per_problem.iter().map(|p| p.1).sum();
        let score = 100.0
            * per_problem
                .iter()
                .map(|&(n, c)| c as f64 / n as f64)
                .sum::<f64>()
            / per_problem.len() as f64;
        assert_eq!(s["benchmark"], want.name.as_str(), "{at}: benchmark");
        assert_eq!(s["problems"], want.problems.len(), "{at}: problems");
        assert_eq!(s["samples"], lines.len(), "{at}: samples");
        assert_eq!(
            s["samples_per_problem"], want.samples,
            "{at}: samples_per_problem"
        );
        assert_eq!(s["correct_samples"], correct, "{at}: correct_samples");
        let metric = if want.samples == 1 {
            "accuracy".to_owned()
        } else {
            format!("avg@{}", want.samples)
        };
        assert_eq!(s["metric"], metric.as_str(), "{at}: metric");
        assert!(
            close(s["score"].as_f64().unwrap(), score),
            "{at}: score {} vs {score}",
            s["score"]
        );
        let pass = s["pass_at_k"].as_array().unwrap();
        let ks: Vec<usize> = pass
            .iter()
            .map(|p| p["k"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(ks.first(), Some(&1), "{at}: pass@k starts at 1");
        assert_eq!(
            ks.last(),
            Some(&want.samples),
            "{at}: pass@k ends at the samples taken"
        );
        for p in pass {
            let k = p["k"].as_u64().unwrap() as usize;
            let v = 100.0
                * per_problem
                    .iter()
                    .map(|&(n, c)| pass_at_k_reference(n, c, k))
                    .sum::<f64>()
                / per_problem.len() as f64;
            assert!(
                close(p["value"].as_f64().unwrap(), v),
                "{at}: pass@{k} {} vs {v}",
                p["value"]
            );
        }
        let pass1 = pass[0]["value"].as_f64().unwrap();
        assert!(close(pass1, score), "{at}: pass@1 equals the mean accuracy");
        let tokens: Vec<usize> = lines
            .iter()
            .map(|l| l["n_tokens"].as_u64().unwrap() as usize)
            .collect();
        assert!(
            close(
                s["mean_response_tokens"].as_f64().unwrap(),
                tokens.iter().sum::<usize>() as f64 / n
            ),
            "{at}: mean tokens"
        );
        assert_eq!(
            s["max_response_tokens"],
            *tokens.iter().max().unwrap(),
            "{at}: max tokens"
        );
        let chars: Vec<usize> = lines
            .iter()
            .map(|l| l["response"].as_str().unwrap().chars().count())
            .collect();
        assert!(
            close(
                s["mean_response_chars"].as_f64().unwrap(),
                chars.iter().sum::<usize>() as f64 / n
            ),
            "{at}: mean chars"
        );
        assert_eq!(
            s["max_response_chars"],
            *chars.iter().max().unwrap(),
            "{at}: max chars"
        );
        let truncated = lines
            .iter()
            .filter(|l| l["finish_reason"] == "length")
            .count();
        assert!(
            close(
                s["truncation_rate"].as_f64().unwrap(),
                100.0 * truncated as f64 / n
            ),
            "{at}: truncation rate"
        );
        let reflective = lines
            .iter()
            .filter(|l| {
                let r = l["response"].as_str().unwrap().to_lowercase();
                ["rethink", "recheck", "recalculate"]
                    .iter()
                    .any(|w| r.contains(w))
            })
            .count();
        assert_eq!(
            s["reflection_responses"], reflective,
            "{at}: reflection_responses"
        );

        let table = std::fs::read_to_string(dir.join("table.md")).expect("benchmark table.md");
        assert!(
            table.contains(&format!("| {} | {} | {:.1} |", want.name, metric, score)),
            "{}: {table}",
            dir.display()
        );
        assert!(
            top_table.contains(&format!("| {} | {} | {:.1} |", want.name, metric, score)),
            "top table.md: {top_table}"
        );
        let config = read_json(&dir.join("eval_config.json"));
        assert_eq!(
            config["problems"],
            serde_json::json!(want.problems),
            "{}/eval_config.json problems",
            dir.display()
        );
        assert_eq!(config["decoding"]["samples"], want.samples);
        all_lines.push(lines);
    }
    all_lines
}
