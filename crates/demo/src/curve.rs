//! The 1-shot run's curves: held-out points (greedy rates on all families and on the families
//! other than pi_1's, sampled pass@k when the budget asks), pi_1's per-step train metrics, and
//! what happened to held-out accuracy after pi_1 saturated.
use crate::evaluate::evaluate_with_bar;
use crate::sampled::{pass_at_k, PassAtK, PassSpec};
use anyhow::Result;
use oneshot_lab::eval::{EvalOptions, Evaluated, LabModel};
use oneshot_lab::layout;
use oneshot_lab::metrics::{Judged, Rates};
use oneshot_lab::splits::LabProblem;
use oneshot_lab::task::Family;
use oneshot_train::metrics::val_key;
use oneshot_train::trainer::RolloutRecord;
use oneshot_train::StepMetrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Names of the held-out curve's sets in the 1-shot run's metrics (`val/<set>/<stat>`).
pub const HELDOUT_STRICT: &str = "heldout_strict";
pub const HELDOUT_LENIENT: &str = "heldout_lenient";
/// Every rate of a point, all families (`val/heldout/<rate>`) and the families other than
/// pi_1's (`val/heldout_other/<rate>`).
pub const HELDOUT: &str = "heldout";
pub const HELDOUT_OTHER: &str = "heldout_other";
/// The layout of the step's own rollouts of pi_1 (`val/pi1_rollouts/<stat>`): which way the
/// policy answers the training example, and which way it is right.
pub const PI1_ROLLOUTS: &str = "pi1_rollouts";

/// The layout of a step's rollouts: the share answered at a glance (`direct`), the checker's
/// accuracy among direct and among worked responses (left out when there are none), and the
/// share that re-checks a step. After pi_1 saturates nearly every group is all-correct (zero
/// advantage), so these say whether the reward still prefers one layout over the other.
pub fn rollout_layout_metrics(rollouts: &[RolloutRecord]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if rollouts.is_empty() {
        return m;
    }
    // Responses and right ones, indexed by `is_direct`.
    let (mut count, mut right, mut checked) = ([0usize; 2], [0usize; 2], 0usize);
    for r in rollouts {
        let parsed = layout::parse(&r.text);
        let direct = usize::from(parsed.is_direct());
        count[direct] += 1;
        right[direct] += usize::from(r.correct);
        checked += usize::from(parsed.checked);
    }
    let total = rollouts.len() as f64;
    m.insert(val_key(PI1_ROLLOUTS, "direct"), count[1] as f64 / total);
    m.insert(val_key(PI1_ROLLOUTS, "checked"), checked as f64 / total);
    for (stat, direct) in [("acc_worked", 0), ("acc_direct", 1)] {
        if count[direct] > 0 {
            let acc = right[direct] as f64 / count[direct] as f64;
            m.insert(val_key(PI1_ROLLOUTS, stat), acc);
        }
    }
    m
}

/// Held-out rates after `step` 1-shot steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    /// All families of the curve set.
    #[serde(flatten)]
    pub all: Rates,
    /// The families other than pi_1's.
    pub other_families: Rates,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_at_k: Option<PassAtK>,
}

impl CurvePoint {
    /// The point of judged greedy responses (with their families).
    pub fn of(step: usize, items: &[Evaluated], excluded: Family) -> Self {
        let judged = |keep: &dyn Fn(Family) -> bool| -> Vec<Judged> {
            items
                .iter()
                .filter(|e| keep(e.family))
                .map(|e| e.judged)
                .collect()
        };
        Self {
            step,
            all: Rates::of(&judged(&|_| true)),
            other_families: Rates::of(&judged(&|f| f != excluded)),
            pass_at_k: None,
        }
    }

    /// The point's numbers as validation metrics of its step's line in `metrics.jsonl`.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert(val_key(HELDOUT_STRICT, "acc"), self.all.strict);
        m.insert(val_key(HELDOUT_LENIENT, "acc"), self.all.lenient);
        for (set, r) in [(HELDOUT, &self.all), (HELDOUT_OTHER, &self.other_families)] {
            for (stat, v) in [
                ("strict", r.strict),
                ("lenient", r.lenient),
                ("boxed", r.boxed),
                ("direct", r.direct),
                ("slip", r.slip),
                ("checked", r.checked),
            ] {
                m.insert(val_key(set, stat), v);
            }
        }
        if let Some(p) = &self.pass_at_k {
            m.insert(val_key(HELDOUT_LENIENT, &format!("pass@{}", p.k)), p.pass);
            m.insert(
                val_key(HELDOUT_OTHER, &format!("pass@{}", p.k)),
                p.other_pass,
            );
        }
        m
    }
}

/// Takes held-out points: greedy on the curve set, pass@k on its first problems.
pub struct Probe<'a> {
    pub curve_set: &'a [LabProblem],
    pub opts: EvalOptions,
    /// Problems and sampling of pass@k (none when the budget turns it off).
    pub pass: Option<(&'a [LabProblem], PassSpec)>,
    /// pi_1's family, left out of `other_families`.
    pub excluded: Family,
}

impl Probe<'_> {
    /// The point of `lab`'s model at `step`; `greedy` reuses responses already judged on the
    /// curve set (the base evaluation's).
    pub fn point(
        &self,
        lab: &LabModel,
        step: usize,
        greedy: Option<&[Evaluated]>,
    ) -> Result<CurvePoint> {
        let evaluated;
        let items = match greedy {
            Some(items) => items,
            None => {
                let quiet = oneshot_run::Progress::quiet();
                evaluated = evaluate_with_bar(lab, self.curve_set, &self.opts, &quiet)?.0;
                &evaluated[..]
            }
        };
        let mut p = CurvePoint::of(step, items, self.excluded);
        if let Some((set, spec)) = &self.pass {
            p.pass_at_k = Some(pass_at_k(lab, set, spec, self.excluded)?);
        }
        Ok(p)
    }
}

/// pi_1's numbers at one 1-shot step, from the trainer's step metrics (`acc/mean`,
/// `actor/entropy`, `response_length/mean` in `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPoint {
    pub step: usize,
    /// Share of pi_1's rollouts whose last `\boxed{}` is right.
    pub pi1_accuracy: f64,
    /// Mean token entropy of the update (none on a step whose update was skipped).
    pub entropy: Option<f64>,
    /// Mean rollout length in tokens.
    pub response_length: f64,
}

impl TrainPoint {
    pub fn of(m: &StepMetrics) -> Self {
        Self {
            step: m.step,
            pi1_accuracy: m.reward.accuracy,
            entropy: m.actor.as_ref().map(|a| a.entropy),
            response_length: m.lengths.mean,
        }
    }
}

/// The first step whose pi_1 rollout accuracy reached `threshold`.
pub fn saturation_step(train: &[TrainPoint], threshold: f64) -> Option<usize> {
    train
        .iter()
        .find(|p| p.pi1_accuracy >= threshold)
        .map(|p| p.step)
}

/// A held-out point's strict and lenient accuracy, all and other families.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracies {
    pub step: usize,
    pub strict: f64,
    pub lenient: f64,
    pub other_strict: f64,
    pub other_lenient: f64,
}

impl Accuracies {
    fn of(p: &CurvePoint) -> Self {
        Self {
            step: p.step,
            strict: p.all.strict,
            lenient: p.all.lenient,
            other_strict: p.other_families.strict,
            other_lenient: p.other_families.lenient,
        }
    }

    fn minus(&self, o: &Self) -> Self {
        Self {
            step: self.step - o.step,
            strict: self.strict - o.strict,
            lenient: self.lenient - o.lenient,
            other_strict: self.other_strict - o.other_strict,
            other_lenient: self.other_lenient - o.other_lenient,
        }
    }
}

/// Held-out accuracy from pi_1's saturation on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostSaturation {
    /// First step with pi_1's rollout accuracy at or above `threshold`.
    pub step: usize,
    pub threshold: f64,
    /// The held-out point taken at that step.
    pub at: Accuracies,
    /// The held-out points after it.
    pub after: Vec<Accuracies>,
    /// The last point minus the one at saturation (`step` = steps between them); none when
    /// saturation came at the last step.
    pub rise: Option<Accuracies>,
}

impl PostSaturation {
    /// From the test curve, which holds a point at the saturation step.
    pub fn from_curve(step: usize, threshold: f64, curve: &[CurvePoint]) -> Option<Self> {
        let at = Accuracies::of(curve.iter().find(|p| p.step == step)?);
        let after: Vec<Accuracies> = curve
            .iter()
            .filter(|p| p.step > step)
            .map(Accuracies::of)
            .collect();
        let rise = after.last().map(|last| last.minus(&at));
        Some(Self {
            step,
            threshold,
            at,
            after,
            rise,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: usize, strict: f64, lenient: f64) -> CurvePoint {
        let r = Rates {
            n: 10,
            strict,
            lenient,
            ..Rates::default()
        };
        CurvePoint {
            step,
            all: r,
            other_families: Rates {
                strict: strict / 2.0,
                ..r
            },
            pass_at_k: None,
        }
    }

    #[test]
    fn rollout_layout_splits_accuracy_by_direct_and_worked() {
        let record = |text: &str, correct| RolloutRecord {
            index: 3,
            text: text.into(),
            correct,
        };
        let rollouts = [
            record("At a glance:\nThe final answer is \\boxed{44}.", true),
            record("At a glance:\nThe final answer is \\boxed{45}.", false),
            record("At a glance:\nThe answer is 44.", false),
            record(
                "Working:\n8 * 7 = 56.\n100 - 56 = 44.\nCheck: 44 + 56 = 100.\nThe final answer is \\boxed{44}.",
                true,
            ),
        ];
        let m = rollout_layout_metrics(&rollouts);
        let get = |stat| m[&val_key(PI1_ROLLOUTS, stat)];
        assert_eq!(get("direct"), 0.75);
        assert_eq!(get("checked"), 0.25);
        assert!((get("acc_direct") - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(get("acc_worked"), 1.0);
        let direct_only = rollout_layout_metrics(&rollouts[..2]);
        assert!(!direct_only.contains_key(&val_key(PI1_ROLLOUTS, "acc_worked")));
        assert!(rollout_layout_metrics(&[]).is_empty());
    }

    #[test]
    fn post_saturation_measures_from_the_saturation_point_to_the_last() {
        let curve = [
            point(0, 0.0, 0.5),
            point(3, 0.2, 0.5),
            point(4, 0.3, 0.55),
            point(8, 0.5, 0.6),
        ];
        let ps = PostSaturation::from_curve(3, 0.95, &curve).unwrap();
        assert_eq!(ps.at.step, 3);
        assert_eq!(
            ps.after.iter().map(|a| a.step).collect::<Vec<_>>(),
            vec![4, 8]
        );
        let rise = ps.rise.unwrap();
        assert_eq!(rise.step, 5);
        assert!((rise.strict - 0.3).abs() < 1e-12);
        assert!((rise.lenient - 0.1).abs() < 1e-12);
        assert!((rise.other_strict - 0.15).abs() < 1e-12);
        // Saturation at the last point: nothing after it to compare.
        let last = PostSaturation::from_curve(8, 0.95, &curve).unwrap();
        assert!(last.after.is_empty() && last.rise.is_none());
        // No point at the step: nothing to measure from.
        assert!(PostSaturation::from_curve(5, 0.95, &curve).is_none());
    }

    #[test]
    fn a_point_splits_off_the_excluded_family_and_serialises_flat() {
        let item = |family, lenient| Evaluated {
            idx: 0,
            family,
            answer: "1".into(),
            response: String::new(),
            judged: Judged {
                lenient,
                ..Judged::default()
            },
        };
        let items = [
            item(Family::Arithmetic, true),
            item(Family::Linear, false),
            item(Family::Units, true),
        ];
        let p = CurvePoint::of(2, &items, Family::Arithmetic);
        assert_eq!((p.all.n, p.other_families.n), (3, 2));
        assert!((p.other_families.lenient - 0.5).abs() < 1e-12);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["step"], 2);
        assert_eq!(v["n"], 3);
        assert!(v["direct"].is_number() && v["other_families"]["slip"].is_number());
        let m = p.metrics();
        assert_eq!(m["val/heldout_other/lenient"], 0.5);
        assert_eq!(m["val/heldout_lenient/acc"], p.all.lenient);
    }
}
