//! `oneshot lab reproduce`: the paper's comparisons on the lab, several seeds each: the base;
//! RLVR on the whole pool; 1-shot on pi_1; 1-shot on a random example; pi_1 without the
//! entropy bonus; the entropy loss alone (no reward); a format reward only; pi_1 with a wrong
//! label. Every run starts from the base with the same budget (steps, batch, rollouts) and is
//! scored greedily on the same held-out set; the table gives mean and spread over seeds.
//! `reproduce.json` is the study's checkpoint ([`crate::study`]): a restart skips finished runs.
use crate::budget::Budget;
use crate::files;
use crate::rl::RlSpec;
use crate::stage::{base_scores, one_shot_spec, selection, train_and_score};
use crate::stats::{mean_std, pct_cell};
use crate::study::{open_lab, Study};
use anyhow::{bail, Context, Result};
use oneshot_data::select::rank_random;
use oneshot_lab::metrics::Rates;
use oneshot_lab::task::Family;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub variant: Variant,
    pub seed: u64,
    /// The training example (1-shot runs).
    pub example: Option<i64>,
    /// The family left out of `other_families`: the training example's, pi_1's for the runs
    /// without one example (base, full pool).
    pub excluded: Family,
    pub heldout: Rates,
    pub other_families: Rates,
    pub seconds: f64,
}

/// A wrong label for `gold` (the paper used "4" for pi_1's "12.8").
fn wrong_label(gold: &str) -> String {
    if gold.trim() == "4" {
        "5".into()
    } else {
        "4".into()
    }
}

/// What the tables say about the study besides its runs.
struct Setup {
    pi1: i64,
    pi1_family: Family,
    gold: String,
    heldout_problems: usize,
    /// Selection pass and base evaluation, as recorded.
    setup_seconds: f64,
}

pub fn run_reproduce(cfg: &ReproduceConfig) -> Result<Vec<RunResult>> {
    let budget = &cfg.budget;
    budget.validate()?;
    if cfg.seeds.is_empty() {
        bail!("reproduce: no seeds");
    }
    let (mut lab, data, data_seed) = open_lab(&cfg.model, &cfg.out, cfg.data_seed)?;
    let out = &cfg.out;
    let eval_set = data.eval_set(budget);
    let settings = json!({
        "model": cfg.model.display().to_string(),
        "budget": budget,
        "data_seed": data_seed,
    });
    let mut study: Study<RunResult> = Study::open(&out.join(files::REPRODUCE_JSON), settings)?;
    let (sel, ranking) = selection(
        &mut study,
        &cfg.model,
        &data,
        budget,
        cfg.seeds[0],
        out,
        cfg.progress,
    )?;
    let pi1 = ranking[0].index;
    let pi1_problem = data.pool_problem(pi1)?;
    let base = base_scores(&mut study, &lab, eval_set, budget, cfg.progress)?;
    let ctx = Setup {
        pi1,
        pi1_family: pi1_problem.family,
        gold: pi1_problem.answer.clone(),
        heldout_problems: eval_set.len(),
        setup_seconds: sel.seconds + base.seconds,
    };
    for &seed in &cfg.seeds {
        // Greedy decoding of the same model: one evaluation stands for every seed (its time
        // is in the setup's).
        if study
            .find(|r| r.variant == Variant::Base && r.seed == seed)
            .is_none()
        {
            study.push(RunResult {
                variant: Variant::Base,
                seed,
                example: None,
                excluded: ctx.pi1_family,
                heldout: base.scores.all,
                other_families: base.scores.excluding(ctx.pi1_family),
                seconds: 0.0,
            });
        }
    }
    write_outputs(cfg, budget, &ctx, &study)?;

    let pool_indices: Vec<i64> = data.pool.iter().map(|p| p.idx as i64).collect();
    let runs_dir = out.join("runs");
    for &variant in &Variant::ALL[1..] {
        for &seed in &cfg.seeds {
            if study
                .find(|r| r.variant == variant && r.seed == seed)
                .is_some()
            {
                continue;
            }
            let t = Instant::now();
            let dir = runs_dir.join(format!("{}_seed{seed}", variant.name()));
            let (example, label) = match variant {
                Variant::FullPool => (None, None),
                Variant::RandomExample => {
                    (Some(rank_random(&pool_indices, seed, None)[0].index), None)
                }
                Variant::Pi1WrongLabel => (Some(pi1), Some(wrong_label(&ctx.gold))),
                _ => (Some(pi1), None),
            };
            let mut spec = match example {
                Some(index) => one_shot_spec(&data, index, label.as_deref(), seed, &dir, budget)?,
                None => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    RlSpec::new(
                        data.pool_file.clone(),
                        budget.one_shot_batch,
                        budget.one_shot_n,
                        budget.one_shot_steps,
                        seed,
                        dir.clone(),
                        budget,
                    )
                }
            };
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
            let run_label = format!("{} seed {seed}", variant.name());
            let scores =
                train_and_score(&cfg.model, &mut lab, &spec, budget, &run_label, eval_set)?;
            let excluded = match example {
                Some(index) => data.pool_problem(index)?.family,
                None => ctx.pi1_family,
            };
            study.push(RunResult {
                variant,
                seed,
                example,
                excluded,
                heldout: scores.all,
                other_families: scores.excluding(excluded),
                seconds: t.elapsed().as_secs_f64(),
            });
            // Written after every run: an interrupted study keeps its finished rows, and the
            // last write is the complete table.
            write_outputs(cfg, budget, &ctx, &study)?;
        }
    }
    Ok(study.runs().to_vec())
}

/// The runs of this command's seeds, in table order.
fn runs_of<'a>(
    cfg: &ReproduceConfig,
    study: &'a Study<RunResult>,
    v: Variant,
) -> Vec<&'a RunResult> {
    cfg.seeds
        .iter()
        .filter_map(|&s| study.find(|r| r.variant == v && r.seed == s))
        .collect()
}

fn write_outputs(
    cfg: &ReproduceConfig,
    budget: &Budget,
    ctx: &Setup,
    study: &Study<RunResult>,
) -> Result<()> {
    let work: f64 = ctx.setup_seconds + study.runs().iter().map(|r| r.seconds).sum::<f64>();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# 1-shot RLVR ablations on the lab\n\nBase `{}`, budget `{}` ({} steps × {} rows × {} rollouts, lr {:e}), seeds {:?}, {} held-out problems (greedy). pi_1 = pool example {} ({}, answer `{}`; wrong label `{}`). Compute time of the recorded runs {:.0} s.\n",
        cfg.model.display(),
        budget.name,
        budget.one_shot_steps,
        budget.one_shot_batch,
        budget.one_shot_n,
        budget.lr,
        cfg.seeds,
        ctx.heldout_problems,
        ctx.pi1,
        ctx.pi1_family.name(),
        ctx.gold,
        wrong_label(&ctx.gold),
        work
    );
    let _ = writeln!(
        md,
        "Mean ± sample std over seeds, in percent. \"other\" = the families other than the run's training example's (pi_1's for the base and the full pool); direct = the working skipped; slip = a wrong step value among the responses that show working.\n"
    );
    let _ = writeln!(md, "| run | what | seeds | strict % | lenient % | strict other % | lenient other % | boxed % | direct % | slip % | strict per seed |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rows = Vec::new();
    for v in Variant::ALL {
        let rs = runs_of(cfg, study, v);
        if rs.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&RunResult) -> f64| rs.iter().map(|r| f(r)).collect::<Vec<f64>>();
        let strict = col(&|r| r.heldout.strict);
        let lenient = col(&|r| r.heldout.lenient);
        let other_strict = col(&|r| r.other_families.strict);
        let other_lenient = col(&|r| r.other_families.lenient);
        let boxed = col(&|r| r.heldout.boxed);
        let direct = col(&|r| r.heldout.direct);
        // Slips are measured only where some response showed its working.
        let slip: Vec<f64> = rs
            .iter()
            .filter(|r| r.heldout.worked_n > 0)
            .map(|r| r.heldout.slip)
            .collect();
        let per: Vec<String> = strict.iter().map(|x| format!("{:.1}", 100.0 * x)).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.name(),
            v.describe(),
            rs.len(),
            pct_cell(&strict),
            pct_cell(&lenient),
            pct_cell(&other_strict),
            pct_cell(&other_lenient),
            pct_cell(&boxed),
            pct_cell(&direct),
            pct_cell(&slip),
            per.join(", ")
        );
        let mut row = Map::new();
        row.insert("variant".into(), json!(v));
        row.insert("seeds".into(), json!(rs.len()));
        for (name, xs) in [
            ("strict", &strict),
            ("lenient", &lenient),
            ("other_strict", &other_strict),
            ("other_lenient", &other_lenient),
            ("boxed", &boxed),
            ("direct", &direct),
            ("slip", &slip),
        ] {
            let (m, sd) = match xs.is_empty() {
                true => (Value::Null, Value::Null),
                false => {
                    let (m, sd) = mean_std(xs);
                    (json!(m), json!(sd))
                }
            };
            row.insert(format!("{name}_mean"), m);
            row.insert(format!("{name}_std"), sd);
        }
        rows.push(Value::Object(row));
    }
    std::fs::write(cfg.out.join(files::REPRODUCE_MD), md)
        .with_context(|| format!("writing {}", cfg.out.join(files::REPRODUCE_MD).display()))?;
    let extra = json!({
        "model": cfg.model.display().to_string(),
        "budget": budget,
        "seeds": cfg.seeds,
        "pi1_index": ctx.pi1,
        "pi1_family": ctx.pi1_family,
        "heldout_problems": ctx.heldout_problems,
        "work_seconds": work,
        "summary": rows,
    });
    study.save(extra)
}
