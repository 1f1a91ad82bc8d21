//! Shared by the eval tests: the benchmark data, a tiny model on disk, and helpers to build the
//! generator and specs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use oneshot_data::checker::VerifyChecker;
use oneshot_data::registry::{benchmark, BenchmarkSource};
use oneshot_data::scoring::{AnswerChecker, Judgement};
use oneshot_data::subset::Limit;
use oneshot_eval::{DecodingOverrides, EvalSpec};
use oneshot_hf::{ChatTemplate, GenerationConfig, Tokenizer};
use oneshot_model::Model;

/// Whether the paper's benchmark files are there; without them the calling test skips (and
/// fails under `CI=true`), see `oneshot_shared_data::require`.
pub fn have_benchmarks() -> bool {
    oneshot_shared_data::require("the benchmark files", "data/benchmarks/math500/test.jsonl")
        .is_some()
}

/// `<shared>/data/benchmarks`; tests check [`have_benchmarks`] first.
pub fn benchmarks_dir() -> PathBuf {
    oneshot_shared_data::path("data/benchmarks")
}

/// A loaded tiny model with its tokenizer, chat template and eos ids.
pub struct Tiny {
    pub dir: tempfile::TempDir,
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub chat: Option<ChatTemplate>,
    pub eos: Vec<u32>,
}

pub fn tiny() -> Tiny {
    let dir = tempfile::tempdir().unwrap();
    oneshot_eval::testing::write_tiny_model(dir.path(), 7).unwrap();
    let model = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let tokenizer = Tokenizer::from_dir(dir.path()).unwrap();
    let chat = ChatTemplate::from_dir(dir.path()).unwrap();
    let eos = GenerationConfig::from_dir(dir.path())
        .unwrap()
        .eos_token_ids;
    Tiny {
        dir,
        model,
        tokenizer,
        chat,
        eos,
    }
}

impl Tiny {
    pub fn generator(&self, batch_size: usize) -> oneshot_eval::Generator<'_> {
        oneshot_eval::Generator::new(&self.model, &self.tokenizer)
            .with_eos_ids(&self.eos)
            .with_chat_template(self.chat.as_ref())
            .with_batch_size(batch_size)
    }
}

/// The registry benchmark `name` with its protocol, `overrides` on top, cut to `limit`.
pub fn spec(name: &str, overrides: DecodingOverrides, limit: Option<Limit>) -> EvalSpec {
    let b = benchmark(name).unwrap();
    let problems = b
        .load(
            &BenchmarkSource::Dir(benchmarks_dir()),
            VerifyChecker::extract_boxed,
        )
        .unwrap();
    let mut spec = EvalSpec::for_benchmark(b, problems);
    spec.decoding = overrides.apply(spec.decoding).unwrap();
    spec.limit = limit;
    spec
}

/// Short generations for tests.
pub fn short(tokens: usize) -> DecodingOverrides {
    DecodingOverrides {
        max_new_tokens: Some(tokens),
        ..Default::default()
    }
}

/// A checker whose verdicts are mixed on random text (correct iff the response has an even
/// number of bytes), so accuracy and pass@k are not trivially 0.
pub struct ParityChecker;

impl AnswerChecker for ParityChecker {
    fn judge(&self, response: &str, _gold: &str) -> Judgement {
        Judgement {
            correct: response.len() & 1 == 0,
            extracted: response.chars().next().map(String::from),
        }
    }
}

pub fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display()))
        })
        .collect()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    )
    .unwrap()
}
