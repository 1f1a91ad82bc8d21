//! `oneshot lab reproduce`: the paper's comparisons on the lab, several seeds each: the base;
//! RLVR on the whole pool; 1-shot on pi_1; 1-shot on a random example; pi_1 without the
//! entropy bonus; the entropy loss alone (no reward); a format reward only; pi_1 with a wrong
//! label. Every run starts from the base with the same budget (steps, batch, rollouts) and is
//! scored greedily on the same held-out set; the table gives mean and spread over seeds.
use crate::budget::Budget;
use crate::evaluate::{bar, evaluate_with_bar};
use crate::files;
use crate::pipeline::{base_data_seed, selection_pass, LabData};
use crate::rl::{run_rl, train_config, RlSpec};
use anyhow::{bail, Context, Result};
use oneshot_data::select::rank_random;
use oneshot_lab::eval::{EvalOptions, LabModel};
use oneshot_lab::metrics::Rates;
use serde::Serialize;
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct ReproduceConfig {
    pub model: PathBuf,
    pub out: PathBuf,
    pub seeds: Vec<u64>,
    pub data_seed: Option<u64>,
    pub budget: Budget,
    pub progress: bool,
}

/// The runs compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    Base,
    FullPool,
    Pi1,
    RandomExample,
    Pi1NoEntropy,
    EntropyOnly,
    FormatRewardOnly,
    Pi1WrongLabel,
}

impl Variant {
    pub const ALL: [Variant; 8] = [
        Variant::Base,
        Variant::FullPool,
        Variant::Pi1,
        Variant::RandomExample,
        Variant::Pi1NoEntropy,
        Variant::EntropyOnly,
        Variant::FormatRewardOnly,
        Variant::Pi1WrongLabel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Base => "base",
            Variant::FullPool => "full_pool",
            Variant::Pi1 => "pi1",
            Variant::RandomExample => "random_example",
            Variant::Pi1NoEntropy => "pi1_no_entropy",
            Variant::EntropyOnly => "entropy_only",
            Variant::FormatRewardOnly => "format_reward_only",
            Variant::Pi1WrongLabel => "pi1_wrong_label",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Variant::Base => "base model, no RL",
            Variant::FullPool => "RLVR on the whole pool (distinct rows each step)",
            Variant::Pi1 => "1-shot on pi_1 (policy gradient + entropy bonus)",
            Variant::RandomExample => "1-shot on a random pool example (one per seed)",
            Variant::Pi1NoEntropy => "1-shot on pi_1 without the entropy bonus",
            Variant::EntropyOnly => "pi_1, entropy loss only (reward 0)",
            Variant::FormatRewardOnly => "pi_1, reward 1 for any \\boxed{} (format only)",
            Variant::Pi1WrongLabel => "pi_1 with a wrong label",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub variant: Variant,
    pub seed: u64,
    /// The training example (1-shot runs).
    pub example: Option<i64>,
    pub heldout: Rates,
    pub seconds: f64,
}

/// Mean and sample standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n.max(1.0);
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

/// A wrong label for `gold` (the paper used "4" for pi_1's "12.8").
fn wrong_label(gold: &str) -> String {
    if gold.trim() == "4" {
        "5".into()
    } else {
        "4".into()
    }
}

pub fn run_reproduce(cfg: &ReproduceConfig) -> Result<Vec<RunResult>> {
    let started = Instant::now();
    let budget = &cfg.budget;
    budget.validate()?;
    if cfg.seeds.is_empty() {
        bail!("reproduce: no seeds");
    }
    let mut lab = LabModel::load(&cfg.model)?;
    let out = &cfg.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let data_seed = match cfg.data_seed {
        Some(s) => s,
        None => base_data_seed(&cfg.model)?,
    };
    let data = LabData::generate(&out.join(files::DATA_DIR), data_seed)?;
    let eval_set = data.eval_set(budget);
    let opts = EvalOptions {
        max_new_tokens: budget.max_new_tokens,
        batch_size: budget.eval_batch,
    };
    let (_, selection_ranking) = selection_pass(
        &cfg.model,
        &data,
        budget,
        cfg.seeds[0],
        &out.join(files::SELECTION_DIR),
        cfg.progress,
    )?;
    let pi1 = selection_ranking[0].index;
    let pi1_gold = data.pool_problem(pi1)?.answer.clone();
    let pool_indices: Vec<i64> = data.pool.iter().map(|p| p.idx as i64).collect();

    let mut results = Vec::new();
    let b = bar(cfg.progress, eval_set.len(), "base eval (greedy)");
    let t0 = Instant::now();
    let (_, base) = evaluate_with_bar(&lab, eval_set, &opts, &b)?;
    b.finish();
    for &seed in &cfg.seeds {
        // Greedy decoding of the same model: one evaluation stands for every seed.
        results.push(RunResult {
            variant: Variant::Base,
            seed,
            example: None,
            heldout: base.all,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    let runs_dir = out.join("runs");
    for &variant in &Variant::ALL[1..] {
        for &seed in &cfg.seeds {
            let t = Instant::now();
            let dir = runs_dir.join(format!("{}_seed{seed}", variant.name()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let one_shot_file = dir.join("train.parquet");
            let (file, example) = match variant {
                Variant::FullPool => (data.pool_file.clone(), None),
                Variant::RandomExample => {
                    let pick = rank_random(&pool_indices, seed, None)[0].index;
                    data.write_one_shot(&one_shot_file, pick, budget.one_shot_batch, None)?;
                    (one_shot_file, Some(pick))
                }
                Variant::Pi1WrongLabel => {
                    data.write_one_shot(
                        &one_shot_file,
                        pi1,
                        budget.one_shot_batch,
                        Some(&wrong_label(&pi1_gold)),
                    )?;
                    (one_shot_file, Some(pi1))
                }
                _ => {
                    data.write_one_shot(&one_shot_file, pi1, budget.one_shot_batch, None)?;
                    (one_shot_file, Some(pi1))
                }
            };
            let mut spec = RlSpec::new(
                file,
                budget.one_shot_batch,
                budget.one_shot_n,
                budget.one_shot_steps,
                seed,
                dir.clone(),
                budget,
            );
            match variant {
                Variant::Pi1NoEntropy => spec.entropy_coef = 0.0,
                Variant::EntropyOnly => spec.correct_value = 0.0,
                Variant::FormatRewardOnly => {
                    spec.correct_value = 0.0;
                    spec.format_value = 1.0;
                }
                _ => {}
            }
            spec.progress = cfg.progress;
            let train_cfg = train_config(&cfg.model, &spec, budget)?;
            let label = format!("{} seed {seed}", variant.name());
            let (trainer, _) = run_rl(train_cfg, &label, |_, _| Ok(()))?;
            lab.model = trainer.policy.model.frozen_copy()?;
            drop(trainer);
            let (_, s) = evaluate_with_bar(&lab, eval_set, &opts, &oneshot_run::Progress::quiet())?;
            results.push(RunResult {
                variant,
                seed,
                example,
                heldout: s.all,
                seconds: t.elapsed().as_secs_f64(),
            });
            // Written after every run: an interrupted study keeps its finished rows, and the
            // last write is the complete table.
            let wall = started.elapsed().as_secs_f64();
            write_outputs(cfg, budget, pi1, &pi1_gold, eval_set.len(), &results, wall)?;
        }
    }
    Ok(results)
}

fn write_outputs(
    cfg: &ReproduceConfig,
    budget: &Budget,
    pi1: i64,
    gold: &str,
    n: usize,
    results: &[RunResult],
    wall: f64,
) -> Result<()> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# 1-shot RLVR ablations on the lab\n\nBase `{}`, budget `{}` ({} steps × {} rows × {} rollouts, lr {:e}), seeds {:?}, {} held-out problems (greedy). pi_1 = pool example {pi1} (answer `{gold}`; wrong label `{}`). Wall time {:.0} s.\n",
        cfg.model.display(),
        budget.name,
        budget.one_shot_steps,
        budget.one_shot_batch,
        budget.one_shot_n,
        budget.lr,
        cfg.seeds,
        n,
        wrong_label(gold),
        wall
    );
    let _ = writeln!(md, "Mean ± sample std over seeds, in percent.\n");
    let _ = writeln!(md, "| run | what | seeds | strict % | lenient % | boxed % | strict per seed |\n|---|---|---:|---:|---:|---:|---|");
    let mut rows = Vec::new();
    for v in Variant::ALL {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.variant == v).collect();
        if rs.is_empty() {
            continue;
        }
        let col = |f: fn(&Rates) -> f64| {
            mean_std(&rs.iter().map(|r| 100.0 * f(&r.heldout)).collect::<Vec<_>>())
        };
        let (s, s_sd) = col(|r| r.strict);
        let (l, l_sd) = col(|r| r.lenient);
        let (b, b_sd) = col(|r| r.boxed);
        // One seed has no spread to show.
        let cell = |m: f64, sd: f64| {
            if rs.len() > 1 {
                format!("{m:.1} ± {sd:.1}")
            } else {
                format!("{m:.1}")
            }
        };
        let per: Vec<String> = rs
            .iter()
            .map(|r| format!("{:.1}", 100.0 * r.heldout.strict))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            v.name(),
            v.describe(),
            rs.len(),
            cell(s, s_sd),
            cell(l, l_sd),
            cell(b, b_sd),
            per.join(", ")
        );
        rows.push(json!({"variant": v, "seeds": rs.len(), "strict_mean": s / 100.0, "strict_std": s_sd / 100.0,
            "lenient_mean": l / 100.0, "lenient_std": l_sd / 100.0, "boxed_mean": b / 100.0, "boxed_std": b_sd / 100.0}));
    }
    std::fs::write(cfg.out.join(files::REPRODUCE_MD), md)?;
    let j = json!({"model": cfg.model.display().to_string(), "budget": budget, "seeds": cfg.seeds, "pi1_index": pi1,
        "heldout_problems": n, "wall_seconds": wall, "summary": rows, "runs": results});
    std::fs::write(
        cfg.out.join(files::REPRODUCE_JSON),
        serde_json::to_string_pretty(&j)?,
    )?;
    Ok(())
}
