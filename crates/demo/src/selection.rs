//! `oneshot lab selection`: does ranking by historical variance pick better training examples
//! than chance? One selection pass (seed 0, as the demo's) ranks the selection pool by the std
//! of each example's rollout accuracy per epoch; 1-shot runs (the demo's 1-shot stage at the
//! budget) on the top-k, on k examples drawn at random from the rest of the ranking, and on
//! the bottom-k, each over several seeds, are scored greedily on the held-out set.
//! `selection.json` holds every run and is the study's checkpoint ([`crate::study`]: a restart
//! skips finished runs); `selection.md` gives mean ± std per group, then per example.
use crate::budget::Budget;
use crate::files;
use crate::stage::{base_scores, one_shot_spec, selection, train_and_score};
use crate::stats::{mean_std, pct_cell};
use crate::study::{open_lab, Study};
use anyhow::{bail, Context, Result};
use oneshot_data::select::{rank_random, Ranked};
use oneshot_lab::metrics::Rates;
use oneshot_lab::task::Family;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Seed of the selection pass (the demo's default seed, so its pi_1 tops the ranking).
pub const SELECTION_SEED: u64 = 0;
/// Seed of the random group's draw.
pub const RANDOM_DRAW_SEED: u64 = 0;

#[derive(Debug, Clone)]
pub struct SelectionConfig {
    pub model: PathBuf,
    pub out: PathBuf,
    /// Seeds of each example's 1-shot runs.
    pub seeds: Vec<u64>,
    /// Examples per group.
    pub k: usize,
    pub data_seed: Option<u64>,
    pub budget: Budget,
    pub progress: bool,
}

/// Where in the variance ranking an example comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Top,
    Random,
    Bottom,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Top, Group::Random, Group::Bottom];

    pub fn name(self) -> &'static str {
        match self {
            Group::Top => "top",
            Group::Random => "random",
            Group::Bottom => "bottom",
        }
    }
}

/// A training example of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    pub group: Group,
    /// 1-based rank by historical variance.
    pub rank: usize,
    pub example: i64,
    pub family: Family,
    /// Std of its rollout accuracy per epoch (the ranking's score) and their mean.
    pub score: f64,
    pub mean: f64,
}

/// One 1-shot run on a picked example, scored on the held-out set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExampleRun {
    #[serde(flatten)]
    pub pick: Pick,
    pub seed: u64,
    pub heldout: Rates,
    /// The families other than the example's own.
    pub other_families: Rates,
    /// The base on those same families.
    pub base_other_families: Rates,
    pub seconds: f64,
}

/// The top-k, k random examples from between them (a seeded draw) and the bottom-k of the
/// ranking; `family` names an example's family.
pub fn picks(
    ranking: &[Ranked],
    k: usize,
    family: impl Fn(i64) -> Result<Family>,
) -> Result<Vec<Pick>> {
    if k == 0 {
        bail!("--k must be at least 1");
    }
    if ranking.len() < 3 * k {
        bail!(
            "--k {k}: three groups of {k} need {} ranked examples; the budget's selection pool ranks {}",
            3 * k,
            ranking.len()
        );
    }
    let n = ranking.len();
    let rest = &ranking[k..n - k];
    let indices: Vec<i64> = rest.iter().map(|r| r.index).collect();
    let drawn: Vec<&Ranked> = rank_random(&indices, RANDOM_DRAW_SEED, None)
        .iter()
        .take(k)
        .filter_map(|d| rest.iter().find(|r| r.index == d.index))
        .collect();
    let groups = [
        (Group::Top, ranking[..k].iter().collect::<Vec<_>>()),
        (Group::Random, drawn),
        (Group::Bottom, ranking[n - k..].iter().collect()),
    ];
    let mut out = Vec::with_capacity(3 * k);
    for (group, rs) in groups {
        for r in rs {
            out.push(Pick {
                group,
                rank: r.rank,
                example: r.index,
                family: family(r.index)?,
                score: r.score,
                mean: r.mean,
            });
        }
    }
    Ok(out)
}

/// What the tables say besides the runs.
struct Setup {
    picks: Vec<Pick>,
    base: Rates,
    ranked: usize,
    heldout_problems: usize,
    setup_seconds: f64,
}

pub fn run_selection_study(cfg: &SelectionConfig) -> Result<Vec<ExampleRun>> {
    let budget = &cfg.budget;
    budget.validate()?;
    if cfg.seeds.is_empty() {
        bail!("selection study: no seeds");
    }
    if cfg.k == 0 {
        bail!("--k must be at least 1");
    }
    let (mut lab, data, data_seed) = open_lab(&cfg.model, &cfg.out, cfg.data_seed)?;
    let out = &cfg.out;
    let eval_set = data.eval_set(budget);
    let settings = json!({
        "model": cfg.model.display().to_string(),
        "budget": budget,
        "data_seed": data_seed,
        "k": cfg.k,
        "selection_seed": SELECTION_SEED,
        "random_draw_seed": RANDOM_DRAW_SEED,
    });
    let mut study: Study<ExampleRun> = Study::open(&out.join(files::SELECTION_JSON), settings)?;
    let (sel, ranking) = selection(
        &mut study,
        &cfg.model,
        &data,
        budget,
        SELECTION_SEED,
        out,
        cfg.progress,
    )?;
    let picks = picks(&ranking, cfg.k, |i| Ok(data.pool_problem(i)?.family))?;
    let base = base_scores(&mut study, &lab, eval_set, budget, cfg.progress)?;
    let setup = Setup {
        picks,
        base: base.scores.all,
        ranked: ranking.len(),
        heldout_problems: eval_set.len(),
        setup_seconds: sel.seconds + base.seconds,
    };
    write_outputs(cfg, &setup, &study)?;

    let runs_dir = out.join("runs");
    for pick in &setup.picks {
        for &seed in &cfg.seeds {
            if finished(&study, pick, seed).is_some() {
                continue;
            }
            let t = Instant::now();
            let name = format!("{}_{}_seed{seed}", pick.group.name(), pick.example);
            let mut spec = one_shot_spec(
                &data,
                pick.example,
                None,
                seed,
                &runs_dir.join(&name),
                budget,
            )?;
            spec.progress = cfg.progress;
            let label = format!(
                "selection {} rank {} example {} seed {seed}",
                pick.group.name(),
                pick.rank,
                pick.example
            );
            let scores = train_and_score(&cfg.model, &mut lab, &spec, budget, &label, eval_set)?;
            study.push(ExampleRun {
                pick: pick.clone(),
                seed,
                heldout: scores.all,
                other_families: scores.excluding(pick.family),
                base_other_families: base.scores.excluding(pick.family),
                seconds: t.elapsed().as_secs_f64(),
            });
            write_outputs(cfg, &setup, &study)?;
        }
    }
    Ok(planned(cfg, &setup, &study).into_iter().cloned().collect())
}

/// The finished run of `pick` at `seed`, if any.
fn finished<'a>(study: &'a Study<ExampleRun>, pick: &Pick, seed: u64) -> Option<&'a ExampleRun> {
    study.find(|r| r.pick.group == pick.group && r.pick.example == pick.example && r.seed == seed)
}

/// The finished runs of this command's picks and seeds, in plan order.
fn planned<'a>(
    cfg: &SelectionConfig,
    setup: &Setup,
    study: &'a Study<ExampleRun>,
) -> Vec<&'a ExampleRun> {
    setup
        .picks
        .iter()
        .flat_map(|p| cfg.seeds.iter().map(move |&s| (p, s)))
        .filter_map(|(p, s)| finished(study, p, s))
        .collect()
}

/// The columns of a row over `runs`: strict, lenient, strict and lenient on the other
/// families, their lenient gain over the base, direct, slip (fractions per run).
fn columns(runs: &[&ExampleRun]) -> [(&'static str, Vec<f64>); 7] {
    let col = |f: &dyn Fn(&ExampleRun) -> f64| runs.iter().map(|r| f(r)).collect::<Vec<f64>>();
    [
        ("strict", col(&|r| r.heldout.strict)),
        ("lenient", col(&|r| r.heldout.lenient)),
        ("other_strict", col(&|r| r.other_families.strict)),
        ("other_lenient", col(&|r| r.other_families.lenient)),
        (
            "other_lenient_gain",
            col(&|r| r.other_families.lenient - r.base_other_families.lenient),
        ),
        ("direct", col(&|r| r.heldout.direct)),
        (
            "slip",
            // Slips are measured only where some response showed its working.
            runs.iter()
                .filter(|r| r.heldout.worked_n > 0)
                .map(|r| r.heldout.slip)
                .collect(),
        ),
    ]
}

fn signed_cell(xs: &[f64]) -> String {
    let (m, sd) = mean_std(xs);
    match xs.len() {
        0 => "-".into(),
        1 => format!("{:+.1}", 100.0 * m),
        _ => format!("{:+.1} ± {:.1}", 100.0 * m, 100.0 * sd),
    }
}

/// One markdown row's cells after the leading ones.
fn cells(runs: &[&ExampleRun]) -> String {
    let cols = columns(runs);
    cols.iter()
        .map(|(name, xs)| match *name {
            "other_lenient_gain" => signed_cell(xs),
            _ => pct_cell(xs),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn write_outputs(cfg: &SelectionConfig, setup: &Setup, study: &Study<ExampleRun>) -> Result<()> {
    let b = &cfg.budget;
    let runs = planned(cfg, setup, study);
    let work = setup.setup_seconds + runs.iter().map(|r| r.seconds).sum::<f64>();
    let k = cfg.k;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Historical-variance selection vs random vs bottom on the lab\n\nBase `{}`, budget `{}`: 1-shot runs of {} steps × {} rows × {} rollouts (lr {:e}) on each example, seeds {:?}; {} held-out problems (greedy). The selection pass (seed {SELECTION_SEED}: {} pool examples × {} epochs × {} rollouts) ranks {} examples by the std of their rollout accuracy per epoch; top = the first {k}, bottom = the last {k}, random = {k} drawn (seed {RANDOM_DRAW_SEED}) from the ranks between. Compute time of the recorded runs {:.0} s.\n",
        cfg.model.display(),
        b.name,
        b.one_shot_steps,
        b.one_shot_batch,
        b.one_shot_n,
        b.lr,
        cfg.seeds,
        setup.heldout_problems,
        b.selection_pool,
        b.selection_epochs,
        b.selection_n,
        setup.ranked,
        work
    );
    let _ = writeln!(
        md,
        "Mean ± sample std over examples × seeds, in percent. \"other\" = the families other than the training example's own; Δ = the lenient gain over the base on those families; direct = the working skipped; slip = a wrong step value among the responses that show working.\n"
    );
    let header = "strict % | lenient % | strict other % | lenient other % | Δ lenient other | direct % | slip %";
    let _ = writeln!(
        md,
        "| group | runs | std (score) | {header} |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let base = &setup.base;
    let _ = writeln!(
        md,
        "| base | - | - | {:.1} | {:.1} | - | - | - | {:.1} | {} |",
        100.0 * base.strict,
        100.0 * base.lenient,
        100.0 * base.direct,
        if base.worked_n > 0 {
            format!("{:.1}", 100.0 * base.slip)
        } else {
            "-".into()
        }
    );
    let mut groups = Vec::new();
    for g in Group::ALL {
        let rs: Vec<&ExampleRun> = runs.iter().copied().filter(|r| r.pick.group == g).collect();
        if rs.is_empty() {
            continue;
        }
        let (score, _) = mean_std(&rs.iter().map(|r| r.pick.score).collect::<Vec<_>>());
        let _ = writeln!(
            md,
            "| {} | {} | {score:.3} | {} |",
            g.name(),
            rs.len(),
            cells(&rs)
        );
        let mut row = Map::new();
        row.insert("group".into(), json!(g));
        row.insert("runs".into(), json!(rs.len()));
        row.insert("score_mean".into(), json!(score));
        for (name, xs) in columns(&rs) {
            let (m, sd) = mean_std(&xs);
            let empty = xs.is_empty();
            row.insert(
                format!("{name}_mean"),
                if empty { Value::Null } else { json!(m) },
            );
            row.insert(
                format!("{name}_std"),
                if empty { Value::Null } else { json!(sd) },
            );
        }
        groups.push(Value::Object(row));
    }
    let _ = writeln!(
        md,
        "\n## Per example\n\n| group | rank | example | family | std | mean acc | seeds | {header} |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in &setup.picks {
        let rs: Vec<&ExampleRun> = runs
            .iter()
            .copied()
            .filter(|r| r.pick.group == p.group && r.pick.example == p.example)
            .collect();
        if rs.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3} | {:.2} | {} | {} |",
            p.group.name(),
            p.rank,
            p.example,
            p.family.name(),
            p.score,
            p.mean,
            rs.len(),
            cells(&rs)
        );
    }
    let md_path = cfg.out.join(files::SELECTION_MD);
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    study.save(json!({
        "model": cfg.model.display().to_string(),
        "budget": b,
        "seeds": cfg.seeds,
        "k": k,
        "heldout_problems": setup.heldout_problems,
        "work_seconds": work,
        "base": setup.base,
        "picks": setup.picks,
        "groups": groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(n: usize) -> Vec<Ranked> {
        (0..n)
            .map(|i| Ranked {
                rank: i + 1,
                index: 100 + i as i64,
                score: 0.5 - 0.01 * i as f64,
                mean: 0.5,
                epochs: 3,
            })
            .collect()
    }

    #[test]
    fn picks_take_top_bottom_and_a_seeded_draw_between() {
        let ranking = ranked(10);
        let p = picks(&ranking, 2, |_| Ok(Family::Linear)).unwrap();
        let of = |g: Group| -> Vec<usize> {
            p.iter().filter(|x| x.group == g).map(|x| x.rank).collect()
        };
        assert_eq!(of(Group::Top), vec![1, 2]);
        assert_eq!(of(Group::Bottom), vec![9, 10]);
        let random = of(Group::Random);
        assert_eq!(random.len(), 2);
        assert!(random.iter().all(|r| (3..=8).contains(r)), "{random:?}");
        assert_ne!(random[0], random[1]);
        // The draw is seeded: the same ranking gives the same picks.
        assert_eq!(picks(&ranking, 2, |_| Ok(Family::Linear)).unwrap(), p);
        let err = picks(&ranking, 4, |_| Ok(Family::Linear))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--k 4") && err.contains("12"), "{err}");
        assert!(picks(&ranking, 0, |_| Ok(Family::Linear)).is_err());
    }
}
