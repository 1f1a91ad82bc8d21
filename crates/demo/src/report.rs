//! `summary.json` (the numbers, fractions in [0, 1]) and `report.md` (what happened, in words
//! and tables) of a demo run.
use crate::files;
use crate::pipeline::DemoOutcome;
use anyhow::{Context, Result};
use oneshot_lab::metrics::{LabScores, Rates};
use oneshot_lab::task::Family;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

fn scores_json(s: &LabScores) -> Value {
    let fam: serde_json::Map<String, Value> = s
        .by_family
        .iter()
        .map(|(f, r)| (f.name().to_string(), json!(r)))
        .collect();
    json!({"all": s.all, "by_family": fam})
}

pub fn summary_json(o: &DemoOutcome) -> Value {
    let other = &o.other_families;
    json!({
        "base_accuracy": o.base.all.strict,
        "one_shot_accuracy": o.one_shot.all.strict,
        "base_lenient_accuracy": o.base.all.lenient,
        "one_shot_lenient_accuracy": o.one_shot.all.lenient,
        "base_boxed_rate": o.base.all.boxed,
        "one_shot_boxed_rate": o.one_shot.all.boxed,
        "eval_problems": o.base.all.n,
        "other_families": {
            "excluded": other.excluded,
            "base": other.base,
            "one_shot": other.one_shot,
            "strict_gain": other.one_shot.strict - other.base.strict,
            "lenient_gain": other.one_shot.lenient - other.base.lenient,
        },
        "pi1_index": o.pi1.index,
        "pi1": o.pi1,
        "ranking_top": o.ranking_top,
        "base": scores_json(&o.base),
        "one_shot": scores_json(&o.one_shot),
        "train_curve": o.train_curve,
        "test_curve": o.test_curve,
        "curve_problems": o.curve_problems,
        "saturation_step": o.saturation_step,
        "saturation_threshold": o.budget.saturation,
        "post_saturation": o.post_saturation,
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

/// The slip rate in percent, or `-` when no response showed measurable working.
/// The slip rate for prose: `x%`, or `unmeasured` when no response showed its working.
fn slip_text(r: &Rates) -> String {
    if r.worked_n == 0 {
        "unmeasured".into()
    } else {
        format!("{}%", pct(r.slip))
    }
}

fn slip_pct(r: &Rates) -> String {
    if r.worked_n == 0 {
        "-".into()
    } else {
        pct(r.slip)
    }
}

/// Base vs 1-shot, per family, over the families other than `excluded` (pi_1's) and overall:
/// strict / lenient / boxed and the working (direct, slip, checked), in percent.
pub fn comparison_table(base: &LabScores, one: &LabScores, excluded: Option<Family>) -> String {
    let mut s = String::from(
        "| family | n | strict base | strict 1-shot | Δ | lenient base | lenient 1-shot | Δ | boxed base | boxed 1-shot | direct base | direct 1-shot | slip base | slip 1-shot | checked base | checked 1-shot |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut row = |name: &str, b: &Rates, o: &Rates| {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            b.n,
            pct(b.strict),
            pct(o.strict),
            signed_points(o.strict - b.strict),
            pct(b.lenient),
            pct(o.lenient),
            signed_points(o.lenient - b.lenient),
            pct(b.boxed),
            pct(o.boxed),
            pct(b.direct),
            pct(o.direct),
            slip_pct(b),
            slip_pct(o),
            pct(b.checked),
            pct(o.checked),
        );
    };
    for (f, b) in &base.by_family {
        if let Some(o) = one.by_family.get(f) {
            let mark = if Some(*f) == excluded {
                " (pi_1's)"
            } else {
                ""
            };
            row(&format!("{}{mark}", f.name()), b, o);
        }
    }
    if let Some(f) = excluded {
        row("**other families**", &base.excluding(f), &one.excluding(f));
    }
    row("**all**", &base.all, &one.all);
    s
}

/// What the curves say about post-saturation generalisation, stated from the numbers.
fn saturation_reading(o: &DemoOutcome) -> String {
    let threshold = pct(o.budget.saturation);
    let Some(sat) = o.saturation_step else {
        let best = o
            .train_curve
            .iter()
            .map(|p| p.pi1_accuracy)
            .fold(0.0, f64::max);
        return format!(
            "pi_1's rollout accuracy never reached {threshold}% within {} steps (best {}%), so this run does not reach the post-saturation regime.",
            o.budget.one_shot_steps,
            pct(best)
        );
    };
    let Some(ps) = &o.post_saturation else {
        return format!(
            "pi_1's rollout accuracy first reached {threshold}% (saturation) at step {sat}; this run took no held-out points."
        );
    };
    let at = &ps.at;
    let head = format!(
        "pi_1's rollout accuracy first reached {threshold}% (saturation) at step {sat}; held-out accuracy there: strict {}%, lenient {}% (other families: {}%, {}%).",
        pct(at.strict),
        pct(at.lenient),
        pct(at.other_strict),
        pct(at.other_lenient)
    );
    let Some(rise) = &ps.rise else {
        return format!("{head} It came at the last step, so no later point shows what follows.");
    };
    let last = at.step + rise.step;
    let verdict = match (rise.strict > 0.0, rise.lenient > 0.0) {
        (true, true) => {
            "held-out strict and lenient accuracy both rose after the training example was solved: post-saturation generalisation"
        }
        (false, false) => {
            "neither held-out strict nor lenient accuracy rose after the training example was solved: no post-saturation gain in this run"
        }
        (true, false) => {
            "held-out strict accuracy rose after the training example was solved but lenient did not: a later format gain, not more solving"
        }
        (false, true) => {
            "held-out lenient accuracy rose after the training example was solved but strict did not"
        }
    };
    format!(
        "{head} Over the {} steps after it ({} held-out points, to step {last}): strict {} points, lenient {} points (other families: {}, {}); {verdict}.",
        rise.step,
        ps.after.len(),
        signed_points(rise.strict),
        signed_points(rise.lenient),
        signed_points(rise.other_strict),
        signed_points(rise.other_lenient),
    )
}

/// What the other families' numbers say: reasoning gain, format gain, or none.
fn gain_reading(base: &Rates, one: &Rates) -> String {
    let strict = one.strict - base.strict;
    let lenient = one.lenient - base.lenient;
    let direct = one.direct - base.direct;
    let working = format!(
        "It skips its working {} ({}% → {}% direct answers).",
        if direct < 0.0 {
            "less often"
        } else {
            "as often or more"
        },
        pct(base.direct),
        pct(one.direct)
    );
    if strict <= 0.0 && lenient <= 0.0 {
        return "1-shot RLVR raised neither strict nor lenient accuracy on the other families in this run.".into();
    }
    if lenient > 0.0 {
        format!(
            "A reasoning gain on families pi_1 does not belong to: the model solves more of them in any answer form (lenient {} points), {} the rewarded boxed form (strict {} points). {working}",
            signed_points(lenient),
            if strict > 0.0 {
                "on top of answering in"
            } else {
                "though not more often in"
            },
            signed_points(strict)
        )
    } else {
        format!(
            "The strict gain on the other families is format: lenient accuracy did not rise ({} points), so the model learned to box its answer rather than to solve more. {working} The paper's format-reward-only ablation measures this share (`oneshot lab reproduce` runs it).",
            signed_points(lenient)
        )
    }
}

/// One row per held-out point, with pi_1's train metrics at that step.
fn curve_table(o: &DemoOutcome) -> String {
    let pass_k = o.budget.pass_k;
    let mut s = String::from("| step | pi_1 train acc % | entropy | response tokens | strict % | lenient % | other strict % | other lenient % | boxed % | direct % | slip % | checked % |");
    let mut rule = String::from("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if pass_k > 0 {
        let _ = write!(s, " pass@{pass_k} % | other pass@{pass_k} % |");
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(s, "\n{rule}");
    for p in &o.test_curve {
        let train = o.train_curve.iter().find(|t| t.step == p.step);
        let (acc, entropy, len) = match train {
            Some(t) => (
                pct(t.pi1_accuracy),
                t.entropy.map_or("-".into(), |e| format!("{e:.3}")),
                format!("{:.1}", t.response_length),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = write!(
            s,
            "| {} | {acc} | {entropy} | {len} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.step,
            pct(p.all.strict),
            pct(p.all.lenient),
            pct(p.other_families.strict),
            pct(p.other_families.lenient),
            pct(p.all.boxed),
            pct(p.all.direct),
            slip_pct(&p.all),
            pct(p.all.checked),
        );
        if pass_k > 0 {
            match &p.pass_at_k {
                Some(k) => {
                    let _ = write!(s, " {} | {} |", pct(k.pass), pct(k.other_pass));
                }
                None => s.push_str(" - | - |"),
            }
        }
        s.push('\n');
    }
    s
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
    let other = &o.other_families;
    let (ob, oo) = (&other.base, &other.one_shot);
    let _ = writeln!(
        s,
        "**Families other than pi_1's** ({} left out; {} held-out problems): strict (the last `\\boxed{{}}` is right: the RLVR reward) **{}% → {}%** ({} points), lenient (the final answer right in any form: did it solve the problem) **{}% → {}%** ({} points). Working: skipped (a direct answer) {}% → {}%; slip rate (a written step with a wrong value, among the {} → {} responses that show their working) {} → {}; a step re-checked {}% → {}%.\n",
        other.excluded.name(),
        ob.n,
        pct(ob.strict),
        pct(oo.strict),
        signed_points(oo.strict - ob.strict),
        pct(ob.lenient),
        pct(oo.lenient),
        signed_points(oo.lenient - ob.lenient),
        pct(ob.direct),
        pct(oo.direct),
        ob.worked_n,
        oo.worked_n,
        slip_text(ob),
        slip_text(oo),
        pct(ob.checked),
        pct(oo.checked),
    );
    let _ = writeln!(s, "{}\n", gain_reading(ob, oo));
    let _ = writeln!(
        s,
        "All {} held-out problems: strict {}% → {}% ({} points), lenient {}% → {}% ({} points), boxed {}% → {}%, direct {}% → {}%, slip {} → {}.\n",
        o.base.all.n,
        pct(o.base.all.strict),
        pct(o.one_shot.all.strict),
        signed_points(o.one_shot.all.strict - o.base.all.strict),
        pct(o.base.all.lenient),
        pct(o.one_shot.all.lenient),
        signed_points(o.one_shot.all.lenient - o.base.all.lenient),
        pct(o.base.all.boxed),
        pct(o.one_shot.all.boxed),
        pct(o.base.all.direct),
        pct(o.one_shot.all.direct),
        slip_text(&o.base.all),
        slip_text(&o.one_shot.all),
    );
    let _ = writeln!(
        s,
        "## Held-out accuracy by family (%)\n\n{}",
        comparison_table(&o.base, &o.one_shot, Some(other.excluded))
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
        "1-shot RLVR: pi_1 repeated to {} rows × {} rollouts per step, {} steps, GRPO with the paper's loss (token-mean, k3 KL {}, entropy bonus {}), AdamW lr {:e}, temperature {}. Test points: greedy on the first {} held-out problems every {} steps and at the saturation step{}. \"other\" = the families other than pi_1's; direct = the working skipped; slip = a wrong step value among responses with working; pi_1's train accuracy, entropy and response length are the trainer's (`{}/{}`).\n",
        b.one_shot_batch,
        b.one_shot_n,
        b.one_shot_steps,
        b.kl_coef,
        b.entropy_coef,
        b.lr,
        b.temperature,
        o.curve_problems,
        b.curve_every,
        if b.pass_k > 0 {
            format!(
                "; pass@{} (any of {} samples at T = {} right in any form) on the first {} of them",
                b.pass_k,
                b.pass_k,
                b.pass_temperature,
                b.pass_limit.min(o.curve_problems)
            )
        } else {
            String::new()
        },
        files::ONE_SHOT_DIR,
        files::METRICS,
    );
    let _ = writeln!(s, "{}\n", saturation_reading(o));
    let _ = writeln!(
        s,
        "![train accuracy of pi_1 and held-out accuracy]({})\n",
        files::CURVES_PNG
    );
    s.push_str(&curve_table(o));
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
