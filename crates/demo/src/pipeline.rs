//! The demo from start to end: base evaluation, selection pass, variance ranking, 1-shot RLVR
//! with train and test curves, final evaluation, then the report files.
use crate::budget::{Budget, DemoConfig};
use crate::curve::{
    rollout_layout_metrics, saturation_step, CurvePoint, PostSaturation, Probe, TrainPoint,
};
use crate::evaluate::{bar, evaluate_with_bar, write_responses};
use crate::files;
use crate::rl::{run_rl, train_config, RlSpec};
use crate::sampled::PassSpec;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use oneshot_data::select::{
    rank_by_variance, ranking_table, repeat_rows, write_history, History, Ranked,
};
use oneshot_data::verl::write_verl_parquet;
use oneshot_lab::eval::{EvalOptions, LabModel};
use oneshot_lab::metrics::{LabScores, Rates};
use oneshot_lab::pretrain::REPORT_FILE;
use oneshot_lab::splits::{verl_rows, write_splits, LabProblem, SplitConfig};
use oneshot_lab::task::Family;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The example 1-shot RLVR trains on, and why it was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen {
    pub index: i64,
    pub family: Family,
    pub difficulty: u8,
    pub problem: String,
    pub answer: String,
    /// Its rollout accuracy per epoch of the selection pass, and their std (the score).
    pub history: Vec<f64>,
    pub score: f64,
}

/// Held-out rates on the families other than pi_1's: where a gain is generalisation, not
/// practice on pi_1's own kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OtherFamilies {
    /// pi_1's family, left out.
    pub excluded: Family,
    pub base: Rates,
    pub one_shot: Rates,
}

impl OtherFamilies {
    pub fn new(excluded: Family, base: &LabScores, one_shot: &LabScores) -> Self {
        Self {
            excluded,
            base: base.excluding(excluded),
            one_shot: one_shot.excluding(excluded),
        }
    }
}

/// What the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoOutcome {
    pub model: String,
    pub budget: Budget,
    pub seed: u64,
    pub data_seed: u64,
    pub base: LabScores,
    pub one_shot: LabScores,
    pub other_families: OtherFamilies,
    pub pi1: Chosen,
    /// The top of the variance ranking (rank, index, std, mean accuracy).
    pub ranking_top: Vec<Ranked>,
    /// pi_1's rollout accuracy, entropy and response length at each 1-shot step.
    pub train_curve: Vec<TrainPoint>,
    /// Held-out rates on the curve subset every few steps (step 0 = the base), and at the
    /// saturation step.
    pub test_curve: Vec<CurvePoint>,
    pub curve_problems: usize,
    /// First step whose pi_1 rollout accuracy reached the budget's `saturation`.
    pub saturation_step: Option<usize>,
    /// Held-out accuracy at and after that step.
    pub post_saturation: Option<PostSaturation>,
    pub stage_seconds: BTreeMap<String, f64>,
    pub wall_seconds: f64,
}

/// The pool/benchmark seed the base was pretrained against, from its `lab_pretrain.json`
/// (0 when the directory has none, e.g. a model made elsewhere).
pub fn base_data_seed(model: &Path) -> Result<u64> {
    let path = model.join(REPORT_FILE);
    if !path.is_file() {
        return Ok(0);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    v.pointer("/config/data_seed")
        .map(|s| {
            s.as_u64().with_context(|| {
                format!(
                    "{}: config.data_seed is not an unsigned integer",
                    path.display()
                )
            })
        })
        .transpose()
        .map(|s| s.unwrap_or(0))
}

/// The generated splits and the evaluation subsets a budget uses.
pub struct LabData {
    pub data_seed: u64,
    pub pool: Vec<LabProblem>,
    pub benchmark: Vec<LabProblem>,
    pub pool_file: PathBuf,
}

impl LabData {
    pub fn generate(dir: &Path, data_seed: u64) -> Result<Self> {
        let (pool, benchmark) = write_splits(
            dir,
            data_seed,
            &SplitConfig::pool(),
            &SplitConfig::benchmark(),
        )?;
        Ok(Self {
            data_seed,
            pool,
            benchmark,
            pool_file: dir.join(oneshot_lab::splits::files::POOL_PARQUET),
        })
    }

    /// The before/after evaluation set.
    pub fn eval_set(&self, budget: &Budget) -> &[LabProblem] {
        let n = if budget.eval_limit == 0 {
            self.benchmark.len()
        } else {
            budget.eval_limit.min(self.benchmark.len())
        };
        &self.benchmark[..n]
    }

    /// The first `selection_pool` pool examples, written as verl parquet.
    pub fn write_selection_pool(&self, dir: &Path, budget: &Budget) -> Result<PathBuf> {
        if budget.selection_pool > self.pool.len() {
            bail!(
                "budget {}: selection_pool {} exceeds the pool ({})",
                budget.name,
                budget.selection_pool,
                self.pool.len()
            );
        }
        let path = dir.join("selection_pool.parquet");
        write_verl_parquet(&path, &verl_rows(&self.pool[..budget.selection_pool]))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A training file of `rows` copies of pool example `index`, its label replaced by
    /// `label` when given (the wrong-label ablation).
    pub fn write_one_shot(
        &self,
        path: &Path,
        index: i64,
        rows: usize,
        label: Option<&str>,
    ) -> Result<()> {
        let mut out = repeat_rows(&verl_rows(&self.pool), &[index], rows)?;
        if let Some(l) = label {
            out.iter_mut().for_each(|r| r.ground_truth = l.to_string());
        }
        write_verl_parquet(path, &out).with_context(|| format!("writing {}", path.display()))
    }

    pub fn pool_problem(&self, index: i64) -> Result<&LabProblem> {
        self.pool
            .iter()
            .find(|p| p.idx as i64 == index)
            .with_context(|| format!("example {index} is not in the pool"))
    }
}

/// The selection pass: RLVR over the first `selection_pool` pool examples for
/// `selection_epochs` epochs; returns the per-example accuracy history (also written to
/// `<dir>/rollout_accuracy.json`) and the variance ranking (`<dir>/ranking.md`).
pub fn selection_pass(
    model: &Path,
    data: &LabData,
    budget: &Budget,
    seed: u64,
    dir: &Path,
    show: bool,
) -> Result<(History, Vec<Ranked>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = data.write_selection_pool(dir, budget)?;
    let spec = RlSpec {
        progress: show,
        ..RlSpec::new(
            file,
            budget.selection_batch,
            budget.selection_n,
            budget.selection_steps(),
            seed,
            dir.to_path_buf(),
            budget,
        )
    };
    let cfg = train_config(model, &spec, budget)?;
    let (t, _) = run_rl(cfg, "selection pass (RL)", |_, _| Ok(()))?;
    let hist = t.state.accuracy_so_far();
    write_history(&dir.join(files::HISTORY), &hist)
        .with_context(|| format!("writing {}", dir.join(files::HISTORY).display()))?;
    let ranking = rank_by_variance(&hist);
    if ranking.is_empty() {
        bail!("the selection pass recorded no rollout accuracy");
    }
    let rows = verl_rows(&data.pool[..budget.selection_pool]);
    std::fs::write(dir.join(files::RANKING), ranking_table(&ranking, &rows, 20))?;
    Ok((hist, ranking))
}

fn timed<T>(
    stages: &mut BTreeMap<String, f64>,
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let t = Instant::now();
    let out = f()?;
    stages.insert(name.to_string(), t.elapsed().as_secs_f64());
    Ok(out)
}

/// Runs the whole demo and writes its files into `cfg.out`.
pub fn run_demo(cfg: &DemoConfig) -> Result<DemoOutcome> {
    let started = Instant::now();
    let budget = &cfg.budget;
    budget.validate()?;
    // The model first: a wrong path fails before anything is written.
    let mut lab = LabModel::load(&cfg.model)?;
    let out = &cfg.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let show = cfg.progress;
    let mut stages = BTreeMap::new();
    let data_seed = match cfg.data_seed {
        Some(s) => s,
        None => base_data_seed(&cfg.model)?,
    };
    let data = timed(&mut stages, "generate_data", || {
        LabData::generate(&out.join(files::DATA_DIR), data_seed)
    })?;
    let eval_set = data.eval_set(budget);
    let curve_n = budget.curve_limit.min(eval_set.len());
    let opts = EvalOptions {
        max_new_tokens: budget.max_new_tokens,
        batch_size: budget.eval_batch,
    };

    // 1. The base on the held-out benchmark.
    let (base_items, base) = timed(&mut stages, "base_eval", || {
        let b = bar(show, eval_set.len(), "base eval (greedy)");
        let r = evaluate_with_bar(&lab, eval_set, &opts, &b);
        b.finish();
        r
    })?;
    write_responses(&out.join(files::BASE_RESPONSES), &base_items)?;

    // 2-3. Rollout accuracy history over part of the pool, ranked by variance.
    let sel_dir = out.join(files::SELECTION_DIR);
    let (hist, ranking) = timed(&mut stages, "selection", || {
        selection_pass(&cfg.model, &data, budget, cfg.seed, &sel_dir, show)
    })?;
    let top = &ranking[0];
    let p = data.pool_problem(top.index)?;
    let pi1 = Chosen {
        index: top.index,
        family: p.family,
        difficulty: p.difficulty,
        problem: p.problem.clone(),
        answer: p.answer.clone(),
        history: hist.get(&top.index).cloned().unwrap_or_default(),
        score: top.score,
    };

    // 4. 1-shot RLVR on pi_1, with pi_1's train accuracy per step and held-out points.
    let one_dir = out.join(files::ONE_SHOT_DIR);
    std::fs::create_dir_all(&one_dir).with_context(|| format!("creating {}", one_dir.display()))?;
    let pi1_file = one_dir.join("pi1.parquet");
    data.write_one_shot(&pi1_file, pi1.index, budget.one_shot_batch, None)?;
    let spec = RlSpec {
        progress: show,
        ..RlSpec::new(
            pi1_file,
            budget.one_shot_batch,
            budget.one_shot_n,
            budget.one_shot_steps,
            cfg.seed,
            one_dir.clone(),
            budget,
        )
    };
    let train_cfg = train_config(&cfg.model, &spec, budget)?;
    let curve_set = &eval_set[..curve_n];
    let probe = Probe {
        curve_set,
        opts,
        pass: (budget.pass_k > 0).then(|| {
            let spec = PassSpec {
                k: budget.pass_k,
                temperature: budget.pass_temperature,
                max_new_tokens: budget.max_new_tokens,
                batch: budget.eval_batch,
                seed: cfg.seed,
            };
            (&curve_set[..budget.pass_limit.min(curve_n)], spec)
        }),
        excluded: pi1.family,
    };
    let mut test_curve = Vec::new();
    let mut saturated = None;
    let (trainer, metrics) = timed(&mut stages, "one_shot", || {
        if curve_n > 0 {
            test_curve.push(probe.point(&lab, 0, Some(&base_items[..curve_n]))?);
        }
        run_rl(train_cfg, "1-shot RLVR on pi_1", |t, m| {
            let step = t.state.step;
            m.validation
                .extend(rollout_layout_metrics(&t.last_rollouts));
            // A point at the saturation step itself, so the post-saturation change is measured
            // from there rather than from the nearest regular point.
            let saturates_now = saturated.is_none() && m.reward.accuracy >= budget.saturation;
            if saturates_now {
                saturated = Some(step);
            }
            if curve_n > 0
                && (step % budget.curve_every == 0 || step == spec.steps || saturates_now)
            {
                lab.model = t.policy.model.frozen_copy()?;
                let p = probe.point(&lab, step, None)?;
                m.validation.extend(p.metrics());
                test_curve.push(p);
            }
            Ok(())
        })
    })?;
    let train_curve: Vec<TrainPoint> = metrics.iter().map(TrainPoint::of).collect();
    let saturation_step = saturation_step(&train_curve, budget.saturation);
    let post_saturation =
        saturation_step.and_then(|s| PostSaturation::from_curve(s, budget.saturation, &test_curve));
    let model_dir = one_dir.join("model");
    trainer
        .policy
        .model
        .save(&model_dir, Some(DType::F32), Some(&cfg.model))?;

    // 5. The trained model on the same held-out set.
    lab.model = trainer.policy.model.frozen_copy()?;
    drop(trainer);
    let (one_items, one_shot) = timed(&mut stages, "final_eval", || {
        let b = bar(show, eval_set.len(), "1-shot eval (greedy)");
        let r = evaluate_with_bar(&lab, eval_set, &opts, &b);
        b.finish();
        r
    })?;
    write_responses(&out.join(files::ONE_SHOT_RESPONSES), &one_items)?;

    let outcome = DemoOutcome {
        model: cfg.model.display().to_string(),
        budget: budget.clone(),
        seed: cfg.seed,
        data_seed,
        other_families: OtherFamilies::new(pi1.family, &base, &one_shot),
        base,
        one_shot,
        pi1,
        ranking_top: ranking.iter().take(10).cloned().collect(),
        train_curve,
        test_curve,
        curve_problems: curve_n,
        saturation_step,
        post_saturation,
        stage_seconds: stages,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    super::plots::curves_png(&out.join(files::CURVES_PNG), &outcome)?;
    super::plots::families_png(
        &out.join(files::FAMILIES_PNG),
        &outcome.base,
        &outcome.one_shot,
    )?;
    super::report::write_summary(&out.join(files::SUMMARY), &outcome)?;
    std::fs::write(out.join(files::REPORT), super::report::report_md(&outcome))
        .with_context(|| format!("writing {}", out.join(files::REPORT).display()))?;
    Ok(outcome)
}
