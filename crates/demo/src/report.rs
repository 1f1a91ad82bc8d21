//! `summary.json` (the numbers, fractions in [0, 1]) and `report.md` (what happened, in words
//! and tables) of a demo run.
use crate::files;
use crate::pipeline::DemoOutcome;
use anyhow::{Context, Result};
use oneshot_lab::metrics::{LabScores, Rates};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

fn rates_json(r: &Rates) -> Value {
    json!({"n": r.n, "strict": r.strict, "lenient": r.lenient, "boxed": r.boxed})
}

fn scores_json(s: &LabScores) -> Value {
    let fam: serde_json::Map<String, Value> = s
        .by_family
        .iter()
        .map(|(f, r)| (f.name().to_string(), rates_json(r)))
        .collect();
    json!({"all": rates_json(&s.all), "by_family": fam})
}

pub fn summary_json(o: &DemoOutcome) -> Value {
    json!({
        "base_accuracy": o.base.all.strict,
        "one_shot_accuracy": o.one_shot.all.strict,
        "base_lenient_accuracy": o.base.all.lenient,
        "one_shot_lenient_accuracy": o.one_shot.all.lenient,
        "base_boxed_rate": o.base.all.boxed,
        "one_shot_boxed_rate": o.one_shot.all.boxed,
        "eval_problems": o.base.all.n,
        "pi1_index": o.pi1.index,
        "pi1": o.pi1,
        "ranking_top": o.ranking_top,
        "base": scores_json(&o.base),
        "one_shot": scores_json(&o.one_shot),
        "train_curve": o.train_curve.iter().map(|(s, a)| json!({"step": s, "pi1_accuracy": a})).collect::<Vec<_>>(),
        "test_curve": o.test_curve,
        "curve_problems": o.curve_problems,
        "saturation_step": o.saturation_step,
        "saturation_threshold": super::pipeline::SATURATED,
        "model": o.model,
        "seed": o.seed,
        "data_seed": o.data_seed,
        "budget": o.budget,
        "stage_seconds": o.stage_seconds,
        "wall_seconds": o.wall_seconds,
    })
}

pub fn write_summary(path: &Path, o: &DemoOutcome) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(&summary_json(o))?)
        .with_context(|| format!("writing {}", path.display()))
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn signed_points(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}

/// Base vs 1-shot, per family and overall, strict / lenient / boxed, in percent.
pub fn comparison_table(base: &LabScores, one: &LabScores) -> String {
    let mut s = String::from(
        "| family | n | strict base | strict 1-shot | Δ | lenient base | lenient 1-shot | Δ | boxed base | boxed 1-shot |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut row = |name: &str, b: &Rates, o: &Rates| {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            b.n,
            pct(b.strict),
            pct(o.strict),
            signed_points(o.strict - b.strict),
            pct(b.lenient),
            pct(o.lenient),
            signed_points(o.lenient - b.lenient),
            pct(b.boxed),
            pct(o.boxed)
        );
    };
    for (f, b) in &base.by_family {
        if let Some(o) = one.by_family.get(f) {
            row(f.name(), b, o);
        }
    }
    row("**all**", &base.all, &one.all);
    s
}

/// What the curves say about post-saturation generalisation, stated from the numbers.
fn saturation_reading(o: &DemoOutcome) -> String {
    let Some(sat) = o.saturation_step else {
        let best = o.train_curve.iter().map(|(_, a)| *a).fold(0.0, f64::max);
        return format!(
            "pi_1's rollout accuracy never reached {}% within {} steps (best {}%), so this run does not reach the post-saturation regime.",
            pct(super::pipeline::SATURATED),
            o.budget.one_shot_steps,
            pct(best)
        );
    };
    let at_or_after: Vec<_> = o.test_curve.iter().filter(|p| p.step >= sat).collect();
    match (at_or_after.first(), at_or_after.last()) {
        (Some(first), Some(last)) if last.step > first.step => {
            let d = last.strict - first.strict;
            let verdict = if d > 0.0 {
                "held-out strict accuracy kept rising after the training example was solved: post-saturation generalisation"
            } else {
                "held-out strict accuracy did not rise after the training example was solved: no post-saturation gain in this run"
            };
            format!(
                "pi_1's rollout accuracy first reached {}% (saturation) at step {sat}. Between the first test point at or after it (step {}: {}% strict) and the last (step {}: {}%), {verdict} ({} points; lenient {} points).",
                pct(super::pipeline::SATURATED),
                first.step,
                pct(first.strict),
                last.step,
                pct(last.strict),
                signed_points(d),
                signed_points(last.lenient - first.lenient)
            )
        }
        _ => format!("pi_1's rollout accuracy first reached {}% at step {sat}, too late for a later test point.", pct(super::pipeline::SATURATED)),
    }
}

pub fn report_md(o: &DemoOutcome) -> String {
    let b = &o.budget;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# 1-shot RLVR on the lab: one training example, held-out benchmark\n"
    );
    let _ = writeln!(
        s,
        "Base model `{}`, budget `{}`, seed {}, lab data seed {}. Wall time {:.0} s.\n",
        o.model, b.name, o.seed, o.data_seed, o.wall_seconds
    );
    let _ = writeln!(s, "## Result\n");
    let _ = writeln!(
        s,
        "Strict accuracy (the last `\\boxed{{}}` is right: the RLVR reward) on {} held-out problems: **{}% → {}%** ({} points) after 1-shot RLVR on one example. Lenient accuracy (the final answer right in any form: did it solve the problem): {}% → {}% ({} points). Boxed rate {}% → {}%.\n",
        o.base.all.n,
        pct(o.base.all.strict),
        pct(o.one_shot.all.strict),
        signed_points(o.one_shot.all.strict - o.base.all.strict),
        pct(o.base.all.lenient),
        pct(o.one_shot.all.lenient),
        signed_points(o.one_shot.all.lenient - o.base.all.lenient),
        pct(o.base.all.boxed),
        pct(o.one_shot.all.boxed),
    );
    let strict_gain = o.one_shot.all.strict - o.base.all.strict;
    let lenient_gain = o.one_shot.all.lenient - o.base.all.lenient;
    let reading = if strict_gain > 0.0 && lenient_gain < 0.0 {
        "The strict gain is format: the model now answers in the rewarded form (boxed rate), while lenient accuracy (solving the problem, whatever the answer form) fell. The base already solved these problems without boxing the answer; one example taught the boxing habit, and its short solution style cost some solving on other families. The paper's format-reward-only ablation measures this share (`oneshot lab reproduce` runs it)."
    } else if strict_gain > 0.0 && lenient_gain < strict_gain / 2.0 {
        "Most of the strict gain is format: lenient accuracy (solving the problem, whatever the answer form) rose by less than half as much, while the boxed rate shows the model now answers in the rewarded form. This is the share the paper's format-reward-only ablation measures; a small base learns the boxing habit from one example far more than new reasoning."
    } else if strict_gain > 0.0 {
        "The lenient gain is a large part of the strict one, so the model got better at solving, not only at answering in the rewarded form."
    } else {
        "1-shot RLVR did not raise strict accuracy in this run."
    };
    let _ = writeln!(s, "{reading}\n");
    let _ = writeln!(
        s,
        "## Held-out accuracy by family (%)\n\n{}",
        comparison_table(&o.base, &o.one_shot)
    );
    let _ = writeln!(s, "![base vs 1-shot by family]({})\n", files::FAMILIES_PNG);

    let _ = writeln!(s, "## The chosen example pi_1\n");
    let _ = writeln!(
        s,
        "Selection pass: RLVR over {} pool examples for {} epochs ({} rollouts each per epoch, {} steps); each example's rollout accuracy per epoch is in `{}/{}`, ranked by its standard deviation (historical variance score) in `{}/{}`.\n",
        b.selection_pool,
        b.selection_epochs,
        b.selection_n,
        b.selection_steps(),
        files::SELECTION_DIR,
        files::HISTORY,
        files::SELECTION_DIR,
        files::RANKING
    );
    let hist: Vec<String> = o.pi1.history.iter().map(|a| format!("{a:.2}")).collect();
    let _ = writeln!(
        s,
        "pi_1 = pool example {} ({}, level {}): \"{}\" (answer `{}`); accuracy per epoch [{}], std {:.3}.\n",
        o.pi1.index,
        o.pi1.family.name(),
        o.pi1.difficulty,
        o.pi1.problem,
        o.pi1.answer,
        hist.join(", "),
        o.pi1.score
    );
    let _ = writeln!(
        s,
        "| rank | index | std | mean acc |\n|---:|---:|---:|---:|"
    );
    for r in &o.ranking_top {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.2} |",
            r.rank, r.index, r.score, r.mean
        );
    }

    let _ = writeln!(s, "\n## Training and test curves\n");
    let _ = writeln!(
        s,
        "1-shot RLVR: pi_1 repeated to {} rows × {} rollouts per step, {} steps, GRPO with the paper's loss (token-mean, k3 KL {}, entropy bonus {}), AdamW lr {:e}, temperature {}. Test points: greedy on the first {} held-out problems every {} steps.\n",
        b.one_shot_batch, b.one_shot_n, b.one_shot_steps, b.kl_coef, b.entropy_coef, b.lr, b.temperature, o.curve_problems, b.curve_every
    );
    let _ = writeln!(s, "{}\n", saturation_reading(o));
    let _ = writeln!(
        s,
        "![train accuracy of pi_1 and held-out accuracy]({})\n",
        files::CURVES_PNG
    );
    let _ = writeln!(s, "| step | pi_1 train acc % | held-out strict % | held-out lenient % | boxed % |\n|---:|---:|---:|---:|---:|");
    for p in &o.test_curve {
        let train = o
            .train_curve
            .iter()
            .find(|(st, _)| *st == p.step)
            .map_or("-".to_string(), |(_, a)| pct(*a));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            p.step,
            train,
            pct(p.strict),
            pct(p.lenient),
            pct(p.boxed)
        );
    }

    let _ = writeln!(s, "\n## Time\n\n| stage | seconds |\n|---|---:|");
    for (k, v) in &o.stage_seconds {
        let _ = writeln!(s, "| {k} | {v:.1} |");
    }
    let _ = writeln!(s, "| **total** | {:.1} |", o.wall_seconds);

    let _ = writeln!(
        s,
        "\n## Files\n\n- `{}`: the numbers of this report\n- `{}`, `{}`: held-out responses, judged\n- `{}/`: pool (verl parquet) and benchmark\n- `{}/`: selection pass metrics, history, ranking, `training_curves.png`\n- `{}/`: 1-shot metrics (`metrics.jsonl`, with the held-out points), `training_curves.png`, the trained `model/`",
        files::SUMMARY,
        files::BASE_RESPONSES,
        files::ONE_SHOT_RESPONSES,
        files::DATA_DIR,
        files::SELECTION_DIR,
        files::ONE_SHOT_DIR
    );
    s
}
