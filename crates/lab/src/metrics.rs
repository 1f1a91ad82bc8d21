//! The lab's numbers per response: strict (the last `\boxed{}` is right: the RLVR reward),
//! lenient (the final answer is right in any form: did the model actually solve it), boxed (the
//! response has a `\boxed{}` at all: the format habit), and three about the working (see
//! [`crate::layout`]): direct (no working shown), slipped (a step line states a value other
//! than the gold working's) and checked (a `Check:` line).
use crate::layout;
use crate::task::Family;
use oneshot_verify::{Checker, CheckerOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Judged {
    pub strict: bool,
    pub lenient: bool,
    pub boxed: bool,
    /// No working: the `At a glance:` opener, or no step line before the answer line.
    #[serde(default)]
    pub direct: bool,
    /// For a response with working and known gold steps: whether a step line states a wrong
    /// value (or a step is missing or extra). `None` for a direct response or unknown gold.
    #[serde(default)]
    pub slipped: Option<bool>,
    /// A line starting with `Check:`.
    #[serde(default)]
    pub checked: bool,
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
    /// Judge `response` against the gold answer and the gold working (`gold_steps`, empty
    /// when unknown).
    pub fn judge(&self, response: &str, gold: &str, gold_steps: &[String]) -> Judged {
        let strict = self.strict.check(response, gold).correct;
        let parsed = layout::parse(response);
        let direct = parsed.is_direct();
        Judged {
            strict,
            lenient: strict || self.lenient.check(response, gold).correct,
            boxed: response.contains("\\boxed{"),
            direct,
            slipped: (!direct && !gold_steps.is_empty())
                .then(|| layout::working_slips(&parsed.steps, gold_steps)),
            checked: parsed.checked,
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
    /// Share of responses without working.
    #[serde(default)]
    pub direct: f64,
    /// Share of slipped working among the `worked_n` responses whose working was measured.
    #[serde(default)]
    pub slip: f64,
    /// Share of responses with a `Check:` line.
    #[serde(default)]
    pub checked: f64,
    /// Responses with a measurable working (`Judged::slipped` is known).
    #[serde(default)]
    pub worked_n: usize,
}

/// Counts behind [`Rates`]; they add up over disjoint sets of responses.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    n: usize,
    strict: usize,
    lenient: usize,
    boxed: usize,
    direct: usize,
    checked: usize,
    worked: usize,
    slipped: usize,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.n += o.n;
        self.strict += o.strict;
        self.lenient += o.lenient;
        self.boxed += o.boxed;
        self.direct += o.direct;
        self.checked += o.checked;
        self.worked += o.worked;
        self.slipped += o.slipped;
    }

    fn rates(&self) -> Rates {
        let share = |c: usize, of: usize| if of == 0 { 0.0 } else { c as f64 / of as f64 };
        Rates {
            n: self.n,
            strict: share(self.strict, self.n),
            lenient: share(self.lenient, self.n),
            boxed: share(self.boxed, self.n),
            direct: share(self.direct, self.n),
            slip: share(self.slipped, self.worked),
            checked: share(self.checked, self.n),
            worked_n: self.worked,
        }
    }
}

impl Rates {
    pub fn of<'a>(items: impl IntoIterator<Item = &'a Judged>) -> Self {
        let mut c = Counts::default();
        for j in items {
            c.add(Counts {
                n: 1,
                strict: j.strict as usize,
                lenient: j.lenient as usize,
                boxed: j.boxed as usize,
                direct: j.direct as usize,
                checked: j.checked as usize,
                worked: j.slipped.is_some() as usize,
                slipped: (j.slipped == Some(true)) as usize,
            });
        }
        c.rates()
    }

    /// The counts these rates were made of (each rate times its denominator, rounded).
    fn counts(&self) -> Counts {
        let count = |rate: f64, of: usize| (rate * of as f64).round() as usize;
        Counts {
            n: self.n,
            strict: count(self.strict, self.n),
            lenient: count(self.lenient, self.n),
            boxed: count(self.boxed, self.n),
            direct: count(self.direct, self.n),
            checked: count(self.checked, self.n),
            worked: self.worked_n,
            slipped: count(self.slip, self.worked_n),
        }
    }

    /// The rates of the union of disjoint response sets.
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a Rates>) -> Self {
        let mut c = Counts::default();
        for r in parts {
            c.add(r.counts());
        }
        c.rates()
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

    /// The rates over every family but `family` (e.g. the families other than the training
    /// example's).
    pub fn excluding(&self, family: Family) -> Rates {
        Rates::combine(
            self.by_family
                .iter()
                .filter(|(f, _)| **f != family)
                .map(|(_, r)| r),
        )
    }

    /// A markdown table: one row per family and one for all, in percent (slip % is of the
    /// `worked` responses whose working was measured).
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| family | n | strict % | lenient % | boxed % | direct % | checked % | worked | slip % |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        let row = |name: &str, r: &Rates| {
            format!(
                "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} |\n",
                r.n,
                100.0 * r.strict,
                100.0 * r.lenient,
                100.0 * r.boxed,
                100.0 * r.direct,
                100.0 * r.checked,
                r.worked_n,
                100.0 * r.slip
            )
        };
        for (f, r) in &self.by_family {
            s.push_str(&row(f.name(), r));
        }
        s.push_str(&row("all", &self.all));
        s
    }
}
