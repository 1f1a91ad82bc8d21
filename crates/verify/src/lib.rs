//! Math answer checker: extraction of the final answer from a model response and a decision,
//! by mathematics, of whether it equals the gold answer. This is the reward of every RL run and
//! the judge of every evaluation.
//!
//! ```
//! use oneshot_verify::{Checker, CheckerOptions};
//! let checker = Checker::new(CheckerOptions::default());
//! let v = checker.check("So the answer is $\\boxed{\\frac{2}{4}}$.", "0.5");
//! assert!(v.correct);
//! assert_eq!(v.extracted.as_deref(), Some("\\frac{2}{4}"));
//! ```
//!
//! Pipeline: [`extract_answer`] (boxed answers, "final answer" phrases, math segments...) →
//! string normalisation (digit grouping, decimal commas) → lexer/parser to an answer tree →
//! structural comparison (tuples, sets, intervals, equations, matrices) → scalars by an exact
//! CAS over rational functions, with numeric sampling as the fallback.
//!
//! No input can panic or run unbounded: work is counted in units against
//! [`CheckerOptions::work_limit`]; running out answers "not equal".

mod ast;
mod budget;
mod cas;
mod compare;
mod extract;
mod lexer;
mod normalize;
mod numeric;
mod parser;

pub use budget::{DEFAULT_WORK_LIMIT, MAX_ANSWER_BYTES};
pub use extract::{last_boxed_only, last_number};

use budget::Budget;
use serde::{Deserialize, Serialize};

/// Policies of the checker. `Default` is the evaluation/reward setting documented in the README.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckerOptions {
    /// Relative tolerance for numeric agreement (exact comparisons need none).
    pub tolerance: f64,
    /// When set, numbers are compared after rounding both to this many decimals.
    pub precision: Option<u32>,
    /// A decimal prediction with at least this many significant digits is accepted when it is
    /// the gold value correctly rounded to the prediction's decimals (`2.6667` for `8/3`).
    pub rounded_min_sig_digits: u32,
    /// Fall back to the last number anywhere in the response when nothing else is found.
    pub last_number_fallback: bool,
    /// Only the last `\boxed{}` counts (strict training reward).
    pub boxed_only: bool,
    /// Multiple-choice labels: when non-empty the answer is the last standalone label.
    pub choices: Vec<String>,
    /// Work units one comparison may spend.
    pub work_limit: u64,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            tolerance: 1e-9,
            precision: None,
            rounded_min_sig_digits: 4,
            last_number_fallback: false,
            boxed_only: false,
            choices: Vec::new(),
            work_limit: DEFAULT_WORK_LIMIT,
        }
    }
}

/// Result of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub correct: bool,
    /// Answer extracted from the prediction (None when none was found).
    pub extracted: Option<String>,
    /// Answer extracted from the gold.
    pub gold_extracted: Option<String>,
}

/// Cheap to clone and share across threads.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    opts: CheckerOptions,
}

impl Checker {
    pub fn new(opts: CheckerOptions) -> Self {
        Checker { opts }
    }

    pub fn options(&self) -> &CheckerOptions {
        &self.opts
    }

    /// Extracts answers from `prediction_response` and `gold` and compares them.
    pub fn check(&self, prediction_response: &str, gold: &str) -> Verdict {
        self.check_with_work(prediction_response, gold).0
    }

    /// As [`Checker::check`], also returning the work units spent on parsing and comparison
    /// (never above `work_limit`: a step that would cross it is refused and the answer is "not
    /// equal"). Extraction and string normalisation are single linear passes and not counted.
    pub fn check_with_work(&self, prediction_response: &str, gold: &str) -> (Verdict, u64) {
        let extracted = extract_answer(prediction_response, &self.opts);
        let gold_opts = CheckerOptions {
            boxed_only: false,
            last_number_fallback: false,
            ..self.opts.clone()
        };
        let gold_extracted = extract::extract_gold(gold, &gold_opts);
        let mut budget = Budget::new(self.opts.work_limit);
        let correct = match (&extracted, &gold_extracted) {
            (Some(p), Some(g)) => equal_with_budget(p, g, &self.opts, &mut budget),
            _ => false,
        };
        (
            Verdict {
                correct,
                extracted,
                gold_extracted,
            },
            budget.used(),
        )
    }
}

/// The final answer of a response, by the policy in [`extract`](crate::extract).
pub fn extract_answer(response: &str, opts: &CheckerOptions) -> Option<String> {
    extract::extract_answer(response, opts)
}

/// Are two already-extracted answers equal? `prediction` first: some policies are asymmetric
/// (rounded decimals are accepted from the prediction only).
pub fn answers_equal(prediction: &str, gold: &str, opts: &CheckerOptions) -> bool {
    let mut budget = Budget::new(opts.work_limit);
    equal_with_budget(prediction, gold, opts, &mut budget)
}

fn equal_with_budget(
    prediction: &str,
    gold: &str,
    opts: &CheckerOptions,
    budget: &mut Budget,
) -> bool {
    if prediction.len() > MAX_ANSWER_BYTES || gold.len() > MAX_ANSWER_BYTES {
        // Far longer than any real answer: only an exact match counts.
        return !prediction.trim().is_empty() && prediction.trim() == gold.trim();
    }
    let (lp, lg) = (
        normalize::loose_text(prediction),
        normalize::loose_text(gold),
    );
    if !lp.is_empty() && lp == lg {
        return true;
    }
    if let Some((digits, radix)) = normalize::base_numeral(&lg) {
        // A base-conversion question asks for the digits in that base: `4210_5` (or `4210`
        // alone) answers it, its decimal value 555 does not.
        // `x=4210_5` names the same digits.
        let lp = match lp.split_once('=') {
            Some((name, value)) if name.bytes().all(|c| c.is_ascii_alphabetic()) => value,
            _ => lp.as_str(),
        };
        return match normalize::base_numeral(lp) {
            Some((d, r)) => r == radix && same_digits(&d, &digits),
            None => {
                let bare = lp.trim_start_matches('-');
                !bare.is_empty()
                    && bare.bytes().all(|c| c.is_ascii_alphanumeric())
                    && lp.starts_with('-') == digits.starts_with('-')
                    && same_digits(bare, digits.trim_start_matches('-'))
            }
        };
    }
    let parse_all = |s: &str, budget: &mut Budget| -> Vec<ast::Node> {
        normalize::readings(s)
            .iter()
            .filter_map(|r| parser::parse(r, budget).ok())
            .collect()
    };
    let ps = parse_all(prediction, budget);
    let gs = parse_all(gold, budget);
    for p in &ps {
        for g in &gs {
            let mut cmp = compare::Comparer::new(
                opts,
                Budget::new(budget.limit().saturating_sub(budget.used())),
            );
            let ok = cmp.answers(p, g);
            let spent = cmp.budget.used();
            if budget.spend(spent).is_err() {
                return false;
            }
            if ok {
                return true;
            }
        }
    }
    false
}

fn same_digits(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    let (a, b) = (strip(a), strip(b));
    a == b
}

#[cfg(test)]
mod family_tests;
#[cfg(test)]
mod tests;
