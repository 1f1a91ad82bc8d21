//! The lab's three numbers per response: strict (the last `\boxed{}` is right: the RLVR
//! reward), lenient (the final answer is right in any form: did the model actually solve it),
//! and boxed (the response has a `\boxed{}` at all: the format habit).
use crate::task::Family;
use oneshot_verify::{Checker, CheckerOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Judged {
    pub strict: bool,
    pub lenient: bool,
    pub boxed: bool,
}

/// Both checkers of the lab metric.
#[derive(Debug, Clone)]
pub struct LabJudge {
    strict: Checker,
    lenient: Checker,
}

impl Default for LabJudge {
    fn default() -> Self {
        Self {
            strict: Checker::new(CheckerOptions {
                boxed_only: true,
                ..CheckerOptions::default()
            }),
            // The checker's general extraction (boxed, "the answer is", a trailing `= X`), then
            // the last number anywhere.
            lenient: Checker::new(CheckerOptions {
                last_number_fallback: true,
                ..CheckerOptions::default()
            }),
        }
    }
}

impl LabJudge {
    pub fn judge(&self, response: &str, gold: &str) -> Judged {
        let strict = self.strict.check(response, gold).correct;
        Judged {
            strict,
            lenient: strict || self.lenient.check(response, gold).correct,
            boxed: response.contains("\\boxed{"),
        }
    }
}

/// Rates (0..1) over a set of responses.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub n: usize,
    pub strict: f64,
    pub lenient: f64,
    pub boxed: f64,
}

impl Rates {
    pub fn of<'a>(items: impl IntoIterator<Item = &'a Judged>) -> Self {
        let (mut n, mut s, mut l, mut b) = (0usize, 0usize, 0usize, 0usize);
        for j in items {
            n += 1;
            s += j.strict as usize;
            l += j.lenient as usize;
            b += j.boxed as usize;
        }
        let r = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };
        Self {
            n,
            strict: r(s),
            lenient: r(l),
            boxed: r(b),
        }
    }
}

/// Overall and per-family rates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LabScores {
    pub all: Rates,
    pub by_family: BTreeMap<Family, Rates>,
}

impl LabScores {
    pub fn new(items: &[(Family, Judged)]) -> Self {
        let mut by_family = BTreeMap::new();
        for f in Family::ALL {
            let js: Vec<&Judged> = items
                .iter()
                .filter(|(g, _)| *g == f)
                .map(|(_, j)| j)
                .collect();
            if !js.is_empty() {
                by_family.insert(f, Rates::of(js));
            }
        }
        Self {
            all: Rates::of(items.iter().map(|(_, j)| j)),
            by_family,
        }
    }

    /// A markdown table: one row per family and one for all, in percent.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| family | n | strict % | lenient % | boxed % |\n|---|---|---|---|---|\n",
        );
        let row = |name: &str, r: &Rates| {
            format!(
                "| {name} | {} | {:.1} | {:.1} | {:.1} |\n",
                r.n,
                100.0 * r.strict,
                100.0 * r.lenient,
                100.0 * r.boxed
            )
        };
        for (f, r) in &self.by_family {
            s.push_str(&row(f.name(), r));
        }
        s.push_str(&row("all", &self.all));
        s
    }
}
