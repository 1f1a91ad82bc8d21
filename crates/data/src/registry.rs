//! The six evaluation benchmarks of the paper, with their sizes, file layout, label rules and
//! decoding protocol (docs/PAPER.md §4), and where to find their files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::problems::{read_jsonl_problems, BoxedExtractor, LabelSource, Problem, ProblemFields};

/// How responses are sampled for a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decoding {
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: f64,
    /// Responses per problem.
    pub samples: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Decoding {
    pub const GREEDY: Decoding = Decoding {
        temperature: 0.0,
        top_p: 1.0,
        samples: 1,
        max_new_tokens: 3072,
        seed: 0,
    };
    /// Temperature 0.6, 8 samples (AIME24/25, AMC23): reported as avg@8.
    pub const SAMPLED_8: Decoding = Decoding {
        temperature: 0.6,
        top_p: 1.0,
        samples: 8,
        max_new_tokens: 3072,
        seed: 0,
    };

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// Which field holds the label of a benchmark's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRule {
    Answer,
    BoxedInSolution,
    FirstFinalAnswer,
}

/// One benchmark of the registry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchmarkSpec {
    /// Registry name, also the directory name: `<data dir>/<name>/test.jsonl`.
    pub name: &'static str,
    /// Column header in the results table (as in the paper).
    pub column: &'static str,
    pub size: usize,
    pub label: LabelRule,
    pub decoding: Decoding,
}

/// In the column order of the paper's tables.
pub const BENCHMARKS: [BenchmarkSpec; 6] = [
    BenchmarkSpec {
        name: "math500",
        column: "MATH500",
        size: 500,
        label: LabelRule::Answer,
        decoding: Decoding::GREEDY,
    },
    BenchmarkSpec {
        name: "aime24",
        column: "AIME24",
        size: 30,
        label: LabelRule::Answer,
        decoding: Decoding::SAMPLED_8,
    },
    BenchmarkSpec {
        name: "amc23",
        column: "AMC23",
        size: 40,
        label: LabelRule::Answer,
        decoding: Decoding::SAMPLED_8,
    },
    BenchmarkSpec {
        name: "minerva_math",
        column: "Minerva",
        size: 272,
        label: LabelRule::BoxedInSolution,
        decoding: Decoding::GREEDY,
    },
    BenchmarkSpec {
        name: "olympiadbench",
        column: "OlympiadB",
        size: 675,
        label: LabelRule::FirstFinalAnswer,
        decoding: Decoding::GREEDY,
    },
    BenchmarkSpec {
        name: "aime25",
        column: "AIME25",
        size: 30,
        label: LabelRule::Answer,
        decoding: Decoding::SAMPLED_8,
    },
];

/// The benchmark called `name`, or an error listing the known names.
pub fn benchmark(name: &str) -> Result<&'static BenchmarkSpec> {
    BENCHMARKS.iter().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<_> = BENCHMARKS.iter().map(|b| b.name).collect();
        DataError::Invalid(format!(
            "unknown benchmark `{name}` (known: {})",
            names.join(", ")
        ))
    })
}

impl BenchmarkSpec {
    /// The file's field names (Qwen2.5-Math harness format).
    pub fn fields(&self) -> ProblemFields {
        let label = match self.label {
            LabelRule::Answer => LabelSource::Field("answer".into()),
            LabelRule::BoxedInSolution => LabelSource::BoxedIn("solution".into()),
            LabelRule::FirstFinalAnswer => LabelSource::FirstOf("final_answer".into()),
        };
        ProblemFields {
            question: vec!["problem".into(), "question".into()],
            label,
        }
    }

    /// Path of the test file inside a data directory.
    pub fn relative_path(&self) -> String {
        format!("{}/test.jsonl", self.name)
    }

    /// Loads and checks the benchmark: the file must hold exactly `size` good records.
    pub fn load(&self, source: &BenchmarkSource, extract: BoxedExtractor) -> Result<Vec<Problem>> {
        let path = source.fetch(self)?;
        let problems = read_jsonl_problems(&path, &self.fields(), extract)?;
        if problems.len() != self.size {
            return Err(DataError::format(
                &path,
                format!(
                    "{} should have {} problems, the file has {}",
                    self.name,
                    self.size,
                    problems.len()
                ),
            ));
        }
        Ok(problems)
    }
}

/// Environment variable naming the default benchmark data directory.
pub const DATA_DIR_ENV: &str = "ONESHOT_DATA";

/// Where benchmark files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchmarkSource {
    /// `<dir>/<name>/test.jsonl`.
    Dir(PathBuf),
    /// A Hugging Face dataset repo with the same layout, downloaded into the hf-hub cache.
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl BenchmarkSource {
    /// `--data-dir` if given, else `$ONESHOT_DATA`, else the hub repo if given; else an error
    /// saying what to pass.
    pub fn resolve(
        data_dir: Option<&Path>,
        hub_repo: Option<&str>,
        revision: Option<&str>,
    ) -> Result<Self> {
        if let Some(dir) = data_dir {
            return Ok(BenchmarkSource::Dir(dir.to_owned()));
        }
        if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(BenchmarkSource::Dir(PathBuf::from(dir)));
        }
        if let Some(repo) = hub_repo {
            return Ok(BenchmarkSource::Hub {
                repo: repo.to_owned(),
                revision: revision.map(str::to_owned),
            });
        }
        Err(DataError::Invalid(format!(
            "no benchmark data: pass --data-dir DIR (laid out as DIR/<benchmark>/test.jsonl), \
             set {DATA_DIR_ENV}, or pass --hub-repo OWNER/DATASET"
        )))
    }

    /// The local path of a benchmark's file, downloading it first for a hub source.
    pub fn fetch(&self, spec: &BenchmarkSpec) -> Result<PathBuf> {
        match self {
            BenchmarkSource::Dir(dir) => {
                let path = dir.join(spec.relative_path());
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(DataError::Invalid(format!(
                        "benchmark `{}` not found: {} does not exist (expected <data dir>/{})",
                        spec.name,
                        path.display(),
                        spec.relative_path()
                    )))
                }
            }
            BenchmarkSource::Hub { repo, revision } => {
                download(repo, revision.as_deref(), &spec.relative_path())
            }
        }
    }
}

fn download(repo: &str, revision: Option<&str>, file: &str) -> Result<PathBuf> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let api = ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(|e| {
            DataError::Invalid(format!("cannot set up the Hugging Face hub client: {e}"))
        })?;
    let repo_ref = match revision {
        Some(rev) => Repo::with_revision(repo.to_owned(), RepoType::Dataset, rev.to_owned()),
        None => Repo::new(repo.to_owned(), RepoType::Dataset),
    };
    api.repo(repo_ref).get(file).map_err(|e| {
        DataError::Invalid(format!(
            "cannot download {file} from dataset {repo} on the Hugging Face hub ({e}); \
             without network access, pass --data-dir with a local copy"
        ))
    })
}
