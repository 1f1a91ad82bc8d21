//! The RL training pool and the held-out lab benchmark: deterministic from a seed, unique
//! questions, exact family quotas, and no question shared between them (nor, see
//! [`held_out_questions`], with the pretraining corpus).
use crate::rng::{item_rng, Purpose};
use crate::task::{sample_task, Family};
use crate::weights::{pick_weighted, quotas};
use anyhow::{Context, Result};
use oneshot_data::prompt::training_question;
use oneshot_data::verl::{write_verl_parquet, ChatTurn, ExtraValue, VerlRow};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// A problem of the pool or the benchmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabProblem {
    pub idx: usize,
    pub family: Family,
    pub difficulty: u8,
    /// The bare question (the training instruction is appended when prompting).
    pub problem: String,
    /// Gold answer (`5`, `-3`, `7/3`).
    pub answer: String,
    /// The gold working: the step lines a correct worked solution writes (as in the corpus),
    /// against which a response's working is judged. Empty in files written without it.
    #[serde(default)]
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    pub size: usize,
    /// Family weights in [`Family::ALL`] order (counts follow them exactly).
    pub family_weights: [f64; 6],
    pub difficulty_weights: [f64; 3],
}

impl SplitConfig {
    /// ~1,000 problems, every family equally.
    pub fn pool() -> Self {
        Self {
            size: 1000,
            family_weights: [1.0; 6],
            difficulty_weights: [0.4, 0.35, 0.25],
        }
    }

    /// ~500 problems in other proportions (linear and fractions heavier, arithmetic lighter)
    /// and harder on average.
    pub fn benchmark() -> Self {
        // arithmetic, linear, fractions, percent, units, modular
        Self {
            size: 500,
            family_weights: [0.10, 0.25, 0.20, 0.15, 0.15, 0.15],
            difficulty_weights: [0.3, 0.4, 0.3],
        }
    }
}

/// Problems of `config` under `seed`, none of whose questions is in `exclude`.
fn generate(
    config: &SplitConfig,
    seed: u64,
    purpose: Purpose,
    exclude: &HashSet<String>,
) -> Result<Vec<LabProblem>> {
    crate::weights::validate("family_weights", &config.family_weights)?;
    crate::weights::validate("difficulty_weights", &config.difficulty_weights)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(config.size);
    let mut stream = 0u64;
    for (family, count) in Family::ALL
        .into_iter()
        .zip(quotas(config.size, &config.family_weights))
    {
        let mut made = 0;
        let mut misses = 0;
        while made < count {
            let mut rng = item_rng(seed, purpose, stream);
            stream += 1;
            let difficulty = pick_weighted(&mut rng, &config.difficulty_weights) as u8 + 1;
            let task = sample_task(family, difficulty, &mut rng);
            if exclude.contains(&task.question) || !seen.insert(task.question.clone()) {
                misses += 1;
                if misses > 100 * count + 1000 {
                    anyhow::bail!("could not draw {count} distinct {family} problems (the family has too few); lower the split size");
                }
                continue;
            }
            let answer = task.gold_text();
            out.push(LabProblem {
                idx: 0,
                family,
                difficulty,
                problem: task.question,
                answer,
                steps: task.steps,
            });
            made += 1;
        }
    }
    out.shuffle(&mut item_rng(seed, purpose, u64::MAX));
    for (i, p) in out.iter_mut().enumerate() {
        p.idx = i;
    }
    Ok(out)
}

/// The training pool.
pub fn pool(config: &SplitConfig, seed: u64) -> Result<Vec<LabProblem>> {
    generate(config, seed, Purpose::Pool, &HashSet::new())
}

/// The held-out benchmark: disjoint from `pool`.
pub fn benchmark(config: &SplitConfig, seed: u64, pool: &[LabProblem]) -> Result<Vec<LabProblem>> {
    let exclude = pool.iter().map(|p| p.problem.clone()).collect();
    generate(config, seed, Purpose::Benchmark, &exclude)
}

/// Both splits with their default configurations under `seed`.
pub fn default_splits(seed: u64) -> Result<(Vec<LabProblem>, Vec<LabProblem>)> {
    let p = pool(&SplitConfig::pool(), seed)?;
    let b = benchmark(&SplitConfig::benchmark(), seed, &p)?;
    Ok((p, b))
}

/// The questions pretraining must not see: those of the default pool and benchmark.
pub fn held_out_questions(seed: u64) -> Result<HashSet<String>> {
    let (p, b) = default_splits(seed)?;
    Ok(p.into_iter().chain(b).map(|x| x.problem).collect())
}

/// verl rows of the pool (prompt = the training question as one user turn, as the paper's files).
pub fn verl_rows(problems: &[LabProblem]) -> Vec<VerlRow> {
    problems
        .iter()
        .map(|p| VerlRow {
            data_source: format!("oneshot-lab/{}", p.family),
            prompt: vec![ChatTurn::user(training_question(&p.problem))],
            ability: "math".into(),
            ground_truth: p.answer.clone(),
            reward_style: "rule".into(),
            index: p.idx as i64,
            extra: vec![
                ("split".into(), ExtraValue::Str("train".into())),
                ("family".into(), ExtraValue::Str(p.family.name().into())),
                ("difficulty".into(), ExtraValue::Int(p.difficulty as i64)),
            ],
        })
        .collect()
}

pub fn write_jsonl(path: &Path, problems: &[LabProblem]) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for p in problems {
        serde_json::to_writer(&mut f, p)?;
        f.write_all(b"\n")?;
    }
    f.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Read a jsonl file written by [`write_jsonl`]; errors name the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<LabProblem>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a lab problem record", path.display(), i + 1))
        })
        .collect()
}

/// File names of `oneshot lab generate`'s output directory.
pub mod files {
    pub const POOL_PARQUET: &str = "pool.parquet";
    pub const POOL_JSONL: &str = "pool.jsonl";
    pub const BENCHMARK_JSONL: &str = "benchmark.jsonl";
    pub const MANIFEST: &str = "manifest.json";
}

/// Write pool (verl parquet + jsonl), benchmark (jsonl: `problem`, `answer`, `family`,
/// `difficulty`, `idx`, `steps`) and a manifest to `dir`. The parquet has no `steps`: the RL
/// reward needs only the answer.
pub fn write_splits(
    dir: &Path,
    seed: u64,
    pool_cfg: &SplitConfig,
    bench_cfg: &SplitConfig,
) -> Result<(Vec<LabProblem>, Vec<LabProblem>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let p = pool(pool_cfg, seed)?;
    let b = benchmark(bench_cfg, seed, &p)?;
    let parquet = dir.join(files::POOL_PARQUET);
    write_verl_parquet(&parquet, &verl_rows(&p))
        .with_context(|| format!("writing {}", parquet.display()))?;
    write_jsonl(&dir.join(files::POOL_JSONL), &p)?;
    write_jsonl(&dir.join(files::BENCHMARK_JSONL), &b)?;
    let count = |v: &[LabProblem], f: Family| v.iter().filter(|x| x.family == f).count();
    let manifest = serde_json::json!({
        "seed": seed,
        "pool": {"config": pool_cfg, "families": Family::ALL.iter().map(|&f| (f.name().to_string(), serde_json::Value::from(count(&p, f)))).collect::<serde_json::Map<_, _>>()},
        "benchmark": {"config": bench_cfg, "families": Family::ALL.iter().map(|&f| (f.name().to_string(), serde_json::Value::from(count(&b, f)))).collect::<serde_json::Map<_, _>>()},
    });
    std::fs::write(
        dir.join(files::MANIFEST),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok((p, b))
}
