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

/// `<shared>/data/benchmarks`, from `ONESHOT_SHARED` or `<workspace>/../shared`; fails (never
/// skips) when absent.
pub fn benchmarks_dir() -> PathBuf {
    let root = match std::env::var_os("ONESHOT_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let dir = root.join("data/benchmarks");
    assert!(
        dir.join("math500/test.jsonl").is_file(),
        "benchmark data not found at {} (set ONESHOT_SHARED to the directory holding data/)",
        dir.display()
    );
    dir
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
