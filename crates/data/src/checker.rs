//! The project's answer checker (`oneshot-verify`) behind this crate's [`AnswerChecker`] trait,
//! and its box extraction for labels stored in solutions (minerva_math).

use oneshot_verify::{Checker, CheckerOptions};

use crate::scoring::{AnswerChecker, Judgement};

/// `oneshot-verify`'s checker with its default options (the RLVR reward's).
pub struct VerifyChecker(Checker);

impl VerifyChecker {
    pub fn new(options: CheckerOptions) -> Self {
        VerifyChecker(Checker::new(options))
    }

    /// The content of the last `\boxed{}` of a text, as the checker extracts it; the
    /// [`crate::problems::BoxedExtractor`] for benchmark labels.
    pub fn extract_boxed(text: &str) -> Option<String> {
        oneshot_verify::last_boxed_only(text)
    }
}

impl Default for VerifyChecker {
    fn default() -> Self {
        VerifyChecker::new(CheckerOptions::default())
    }
}

impl AnswerChecker for VerifyChecker {
    fn judge(&self, response: &str, gold: &str) -> Judgement {
        let verdict = self.0.check(response, gold);
        Judgement {
            correct: verdict.correct,
            extracted: verdict.extracted,
        }
    }
}
