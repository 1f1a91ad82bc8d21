//! Problem families, difficulty levels and generated tasks with worked solutions.
use crate::calc::{fmt_q, Calc, Op, Slip, Q};
use crate::families;
use anyhow::{bail, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Multi-step integer arithmetic, `(a + b) * c - d`.
    Arithmetic,
    /// Linear equations in x; some answers are fractions.
    Linear,
    /// Sums, differences, products and quotients of fractions.
    Fractions,
    /// Percent of a number, discounts/increases, "what percent".
    Percent,
    /// Word problems with units (speed, money, time, counting).
    Units,
    /// Remainders, `a mod m`.
    Modular,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Arithmetic,
        Family::Linear,
        Family::Fractions,
        Family::Percent,
        Family::Units,
        Family::Modular,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Arithmetic => "arithmetic",
            Family::Linear => "linear",
            Family::Fractions => "fractions",
            Family::Percent => "percent",
            Family::Units => "units",
            Family::Modular => "modular",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match Family::ALL.into_iter().find(|f| f.name() == s) {
            Some(f) => Ok(f),
            None => {
                let names: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
                bail!("unknown problem family `{s}` (known: {})", names.join(", "))
            }
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Difficulty levels 1 (one or two operations, small numbers) to 3 (more steps, larger numbers).
pub const DIFFICULTIES: [u8; 3] = [1, 2, 3];

/// What a family's solver produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Worked {
    pub question: String,
    /// One line of reasoning each; the last one computes the answer.
    pub steps: Vec<String>,
    /// What the answer is of, for a closing line `"<subject> = X"` (e.g. `x`, `41 mod 4`).
    pub subject: String,
    pub answer: Q,
}

/// A generated problem and one worked solution of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub family: Family,
    pub difficulty: u8,
    pub question: String,
    pub steps: Vec<String>,
    pub subject: String,
    /// The answer the solution arrives at (wrong when `slipped`).
    pub solution_answer: Q,
    /// The correct answer.
    pub gold: Q,
    /// Whether the solution contains an arithmetic slip that changed its answer.
    pub slipped: bool,
    /// The solution's last `+`, `-` or `*` (what a re-check line verifies); `None` when it
    /// has none (a division-only solution).
    pub last_op: Option<Op>,
}

impl Task {
    /// The gold answer as the checker receives it (`5`, `-3`, `7/3`).
    pub fn gold_text(&self) -> String {
        fmt_q(self.gold)
    }

    pub fn solution_answer_text(&self) -> String {
        fmt_q(self.solution_answer)
    }
}

fn solve(family: Family, difficulty: u8, rng: &mut ChaCha8Rng, calc: &mut Calc) -> Worked {
    match family {
        Family::Arithmetic => families::arithmetic::worked(rng, difficulty, calc),
        Family::Linear => families::linear::worked(rng, difficulty, calc),
        Family::Fractions => families::fractions::worked(rng, difficulty, calc),
        Family::Percent => families::percent::worked(rng, difficulty, calc),
        Family::Units => families::units::worked(rng, difficulty, calc),
        Family::Modular => families::modular::worked(rng, difficulty, calc),
    }
}

/// A task with a correct solution, drawn from `rng`.
pub fn sample_task(family: Family, difficulty: u8, rng: &mut ChaCha8Rng) -> Task {
    let mut calc = Calc::exact();
    let w = solve(family, difficulty.clamp(1, 3), rng, &mut calc);
    Task {
        family,
        difficulty: difficulty.clamp(1, 3),
        question: w.question,
        steps: w.steps,
        subject: w.subject,
        solution_answer: w.answer,
        gold: w.answer,
        slipped: false,
        last_op: calc.last_op(),
    }
}

/// A task whose solution slips at one arithmetic operation chosen with `slip_rng`: the same
/// question as [`sample_task`] with the same `rng` state, a wrong answer (when the slip changes
/// the result; a slip that cancels out would leave a correct solution, so it is retried with
/// another delta).
pub fn sample_slipped_task(
    family: Family,
    difficulty: u8,
    rng: &mut ChaCha8Rng,
    slip_rng: &mut ChaCha8Rng,
) -> Task {
    let difficulty = difficulty.clamp(1, 3);
    let start = rng.clone();
    let mut exact = Calc::exact();
    let gold = solve(family, difficulty, rng, &mut exact);
    let after = rng.clone();
    for _ in 0..8 {
        let at = slip_rng.gen_range(0..exact.ops().max(1));
        let mag = [1i64, 1, 2, 2, 3, 10][slip_rng.gen_range(0..6)];
        let delta = if slip_rng.gen_bool(0.5) { mag } else { -mag };
        let mut calc = Calc::with_slip(Slip { at, delta });
        let mut r = start.clone();
        let w = solve(family, difficulty, &mut r, &mut calc);
        debug_assert_eq!(w.question, gold.question);
        if calc.slipped() && w.answer != gold.answer {
            *rng = after;
            return Task {
                family,
                difficulty,
                question: w.question,
                steps: w.steps,
                subject: w.subject,
                solution_answer: w.answer,
                gold: gold.answer,
                slipped: true,
                last_op: calc.last_op(),
            };
        }
    }
    *rng = after;
    Task {
        family,
        difficulty,
        question: gold.question,
        steps: gold.steps,
        subject: gold.subject,
        solution_answer: gold.answer,
        gold: gold.answer,
        slipped: false,
        last_op: exact.last_op(),
    }
}
