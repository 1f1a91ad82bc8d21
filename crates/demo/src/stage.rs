//! The pieces every study run is made of (`lab reproduce`, `lab selection`): the selection
//! pass and the base evaluation, kept in the study's file across restarts, and one RL run from
//! the base scored greedily on the held-out set.
use crate::budget::Budget;
use crate::evaluate::{bar, evaluate_with_bar};
use crate::files;
use crate::pipeline::{selection_pass, LabData};
use crate::rl::{run_rl, train_config, RlSpec};
use crate::study::Study;
use anyhow::{Context, Result};
use oneshot_data::select::{rank_by_variance, History, Ranked};
use oneshot_lab::eval::{EvalOptions, LabModel};
use oneshot_lab::metrics::LabScores;
use oneshot_lab::splits::LabProblem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The selection pass's result as a study keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectionRecord {
    /// Each selection-pool example's rollout accuracy per epoch.
    pub history: History,
    pub seconds: f64,
}

/// The base's held-out scores as a study keeps them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseRecord {
    pub scores: LabScores,
    pub seconds: f64,
}

/// The greedy evaluation settings of a budget.
pub fn eval_options(budget: &Budget) -> EvalOptions {
    EvalOptions {
        max_new_tokens: budget.max_new_tokens,
        batch_size: budget.eval_batch,
    }
}

/// The selection pass of `seed` into `<out>/selection`, or its record from an earlier run of
/// the study; returns the record and the variance ranking.
pub fn selection<R: Serialize + DeserializeOwned>(
    study: &mut Study<R>,
    model: &Path,
    data: &LabData,
    budget: &Budget,
    seed: u64,
    out: &Path,
    show: bool,
) -> Result<(SelectionRecord, Vec<Ranked>)> {
    let record = study.cached("selection", || {
        let t = Instant::now();
        let (history, _) = selection_pass(
            model,
            data,
            budget,
            seed,
            &out.join(files::SELECTION_DIR),
            show,
        )?;
        Ok(SelectionRecord {
            history,
            seconds: t.elapsed().as_secs_f64(),
        })
    })?;
    let ranking = rank_by_variance(&record.history);
    anyhow::ensure!(
        !ranking.is_empty(),
        "the selection pass recorded no rollout accuracy"
    );
    Ok((record, ranking))
}

/// The base's greedy scores on `eval_set`, or their record from an earlier run of the study.
pub fn base_scores<R: Serialize + DeserializeOwned>(
    study: &mut Study<R>,
    lab: &LabModel,
    eval_set: &[LabProblem],
    budget: &Budget,
    show: bool,
) -> Result<BaseRecord> {
    study.cached("base", || {
        let t = Instant::now();
        let b = bar(show, eval_set.len(), "base eval (greedy)");
        let (_, scores) = evaluate_with_bar(lab, eval_set, &eval_options(budget), &b)?;
        b.finish();
        Ok(BaseRecord {
            scores,
            seconds: t.elapsed().as_secs_f64(),
        })
    })
}

/// A 1-shot spec on pool example `index` (its label replaced by `label` when given): the
/// training file `<dir>/train.parquet` holds the example repeated to the budget's batch.
pub fn one_shot_spec(
    data: &LabData,
    index: i64,
    label: Option<&str>,
    seed: u64,
    dir: &Path,
    budget: &Budget,
) -> Result<RlSpec> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("train.parquet");
    data.write_one_shot(&file, index, budget.one_shot_batch, label)?;
    Ok(RlSpec::new(
        file,
        budget.one_shot_batch,
        budget.one_shot_n,
        budget.one_shot_steps,
        seed,
        dir.to_path_buf(),
        budget,
    ))
}

/// Trains from the base with `spec`, then scores the trained policy greedily on `eval_set`
/// (`lab` holds the trained model afterwards).
pub fn train_and_score(
    model: &Path,
    lab: &mut LabModel,
    spec: &RlSpec,
    budget: &Budget,
    label: &str,
    eval_set: &[LabProblem],
) -> Result<LabScores> {
    let cfg = train_config(model, spec, budget)?;
    let (trainer, _) = run_rl(cfg, label, |_, _| Ok(()))?;
    lab.model = trainer.policy.model.frozen_copy()?;
    drop(trainer);
    let quiet = oneshot_run::Progress::quiet();
    let (_, scores) = evaluate_with_bar(lab, eval_set, &eval_options(budget), &quiet)?;
    Ok(scores)
}
