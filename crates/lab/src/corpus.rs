//! The base "pretraining" corpus: the training prompt (question + the RLVR instruction) and a
//! solution in one of two styles (see [`crate::layout`]), ending in a mixed answer form, with a
//! controlled slip rate.
//!
//! This imitates a math-pretrained base model with a general reasoning habit to unlearn. A
//! worked solution (`Working:`, every step, sometimes a `Check:` of the last operation) is
//! mostly right; a direct one (`At a glance:` and the answer line only) states the answer with
//! no working, which a small model imitating it must compute in one go (the error this is
//! meant to teach the base, not one injected at decoding). The style is the first line, the
//! same decision in every family, so rewarding correct answers on one problem can move it
//! everywhere. The answer is given as `\boxed{}` only some of the time.
//!
//! Knobs ([`CorpusConfig`]):
//! - `slip_rate`: share of solutions with one arithmetic slip (the error propagates to the
//!   final answer, which is then wrong; a direct solution states that wrong answer);
//! - `direct_rate`: share of direct solutions, in every family;
//! - `check_rate`: among worked solutions without a slip, the share with a re-check line;
//! - `boxed_rate`: per family, the probability that the answer is given as
//!   `The final answer is \boxed{X}.`;
//! - `answer_is_share`: among the unboxed endings, the share of `The answer is X.`; the rest end
//!   with a bare `<subject> = X.`;
//! - `family_weights`, `difficulty_weights`: the mix of problems.
use crate::layout::{self, Style};
use crate::rng::{item_rng, Purpose};
use crate::task::{sample_slipped_task, sample_task, Family, Task};
use crate::weights::pick_weighted;
use anyhow::{bail, Result};
use oneshot_data::prompt::training_question;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// How a solution states its final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerForm {
    /// `The final answer is \boxed{X}.` (the only form the strict reward accepts)
    Boxed,
    /// `The answer is X.`
    AnswerIs,
    /// `<subject> = X.`
    Bare,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    pub slip_rate: f64,
    /// Share of solutions that state the answer at a glance, without working.
    pub direct_rate: f64,
    /// Among worked solutions without a slip, the share that re-check the last operation.
    pub check_rate: f64,
    /// Probability of a boxed answer, per family in [`Family::ALL`] order.
    pub boxed_rate: [f64; 6],
    pub answer_is_share: f64,
    /// Relative weights of the families, in [`Family::ALL`] order.
    pub family_weights: [f64; 6],
    /// Relative weights of difficulty levels 1, 2, 3.
    pub difficulty_weights: [f64; 3],
}

impl Default for CorpusConfig {
    /// Boxing between 10% and 30% by family, 5% slips. Every family's boxed rate stays below
    /// each of the two unboxed endings' shares ((1 - rate) / 2 >= 0.35), so a greedy base
    /// answers unboxed in every family (at 0.35 the first base boxed all arithmetic greedily).
    /// 5% slips, so the base learns clean arithmetic facts. 55% direct solutions in every
    /// family make a greedy base answer at a glance everywhere (the opener is a two-way choice,
    /// so 55/45 is a clear margin), while leaving enough worked solutions for the base to write
    /// mostly right working (at 60% and 2,400 steps it slipped in 93% of worked responses).
    fn default() -> Self {
        Self {
            slip_rate: 0.05,
            direct_rate: 0.55,
            check_rate: 0.3,
            // arithmetic, linear, fractions, percent, units, modular
            boxed_rate: [0.30, 0.15, 0.25, 0.20, 0.10, 0.30],
            answer_is_share: 0.5,
            family_weights: [1.0; 6],
            difficulty_weights: [0.4, 0.35, 0.25],
        }
    }
}

impl CorpusConfig {
    pub fn validate(&self) -> Result<()> {
        let prob = |name: &str, v: f64| -> Result<()> {
            if !(0.0..=1.0).contains(&v) {
                bail!("corpus config: {name} = {v} must be a probability in [0, 1]");
            }
            Ok(())
        };
        prob("slip_rate", self.slip_rate)?;
        prob("direct_rate", self.direct_rate)?;
        prob("check_rate", self.check_rate)?;
        prob("answer_is_share", self.answer_is_share)?;
        for (f, &r) in Family::ALL.iter().zip(&self.boxed_rate) {
            prob(&format!("boxed_rate[{f}]"), r)?;
        }
        crate::weights::validate("family_weights", &self.family_weights)?;
        crate::weights::validate("difficulty_weights", &self.difficulty_weights)?;
        Ok(())
    }

    pub fn boxed_rate_of(&self, family: Family) -> f64 {
        self.boxed_rate[Family::ALL.iter().position(|&f| f == family).unwrap_or(0)]
    }
}

/// One pretraining document: the user message of the prompt and the assistant's solution.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub task: Task,
    pub style: Style,
    /// Whether the solution has a re-check line.
    pub checked: bool,
    pub form: AnswerForm,
    /// The user message: question + the training instruction (as the RLVR prompts).
    pub user: String,
    /// The solution text (without any end-of-turn token).
    pub solution: String,
}

/// The solution text of `task` in `style` ending in `form`; a worked solution re-checks its
/// last operation when `check` is set and [`check_line`] has one.
pub fn render_solution(task: &Task, style: Style, form: AnswerForm, check: bool) -> String {
    let mut lines = vec![style.opener().to_string()];
    if style == Style::Worked {
        lines.extend(task.steps.iter().cloned());
        if check {
            lines.extend(check_line(task));
        }
    }
    let x = task.solution_answer_text();
    lines.push(match form {
        AnswerForm::Boxed => format!("The final answer is \\boxed{{{x}}}."),
        AnswerForm::AnswerIs => format!("The answer is {x}."),
        AnswerForm::Bare => format!("{} = {x}.", capitalise(&task.subject)),
    });
    lines.join("\n")
}

/// The re-check line of `task`'s last operation (`Check: 34 - 7 = 27.`); `None` when the task
/// records no operation or its last one cannot be inverted.
pub fn check_line(task: &Task) -> Option<String> {
    task.last_op.as_ref().and_then(layout::check_line)
}

/// `the number of pencils` -> `The number of pencils`; symbols and expressions stay as they are.
fn capitalise(s: &str) -> String {
    if !s.starts_with("the ") {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The corpus under one seed: document `i` is a pure function of (seed, i, config), and no
/// document's question is in `exclude` (the held-out pool and benchmark).
pub struct Corpus {
    pub config: CorpusConfig,
    pub seed: u64,
    exclude: HashSet<String>,
}

impl Corpus {
    pub fn new(config: CorpusConfig, seed: u64, exclude: HashSet<String>) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            seed,
            exclude,
        })
    }

    pub fn document(&self, index: u64) -> Document {
        // Redraw (on a different stream) when the question is held out.
        for attempt in 0u64.. {
            let stream = index ^ (attempt << 48);
            let doc = self.draw(stream);
            if !self.exclude.contains(&doc.task.question) {
                return doc;
            }
        }
        unreachable!("the attempt loop only ends by returning")
    }

    fn draw(&self, stream: u64) -> Document {
        let cfg = &self.config;
        let mut rng = item_rng(self.seed, Purpose::Corpus, stream);
        let family = Family::ALL[pick_weighted(&mut rng, &cfg.family_weights)];
        let difficulty = pick_weighted(&mut rng, &cfg.difficulty_weights) as u8 + 1;
        let slip = rng.gen_bool(cfg.slip_rate);
        let boxed = rng.gen_bool(cfg.boxed_rate_of(family));
        let answer_is = rng.gen_bool(cfg.answer_is_share);
        let form = match (boxed, answer_is) {
            (true, _) => AnswerForm::Boxed,
            (false, true) => AnswerForm::AnswerIs,
            (false, false) => AnswerForm::Bare,
        };
        let task = if slip {
            let mut slip_rng = item_rng(self.seed, Purpose::Slip, stream);
            sample_slipped_task(family, difficulty, &mut rng, &mut slip_rng)
        } else {
            sample_task(family, difficulty, &mut rng)
        };
        // Drawn after the task, so the draws above (and so the tasks and answer forms) do not
        // depend on these two knobs.
        let style = if rng.gen_bool(cfg.direct_rate) {
            Style::Direct
        } else {
            Style::Worked
        };
        let wants_check = rng.gen_bool(cfg.check_rate);
        // A check after a slip would state false arithmetic, so slipped solutions never check.
        let checked =
            style == Style::Worked && wants_check && !task.slipped && check_line(&task).is_some();
        let solution = render_solution(&task, style, form, checked);
        Document {
            user: training_question(&task.question),
            solution,
            task,
            style,
            checked,
            form,
        }
    }
}
