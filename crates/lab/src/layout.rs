//! The text layout of a lab solution, shared by the corpus (which writes it) and the judge
//! (which reads model responses back):
//!
//! ```text
//! Working:                         <- opener: `Working:` or `At a glance:`
//! First, 12 + 7 = 19.              <- step lines (none after `At a glance:`)
//! Finally, 19 * 3 = 57.
//! Check: 57 / 3 = 19.              <- optional re-check of the last operation
//! The final answer is \boxed{57}.  <- the answer line
//! ```
//!
//! The opener is one family-independent decision taken before any problem-specific text, so a
//! policy gradient that favours one style moves every family at once.
use crate::calc::{fmt_q, Op, Q};
use serde::{Deserialize, Serialize};

/// Whether a solution shows its working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// `Working:`, every step, then the answer line.
    Worked,
    /// `At a glance:` and the answer line only.
    Direct,
}

impl Style {
    pub fn opener(self) -> &'static str {
        match self {
            Style::Worked => WORKING_OPENER,
            Style::Direct => DIRECT_OPENER,
        }
    }
}

pub const WORKING_OPENER: &str = "Working:";
pub const DIRECT_OPENER: &str = "At a glance:";
pub const CHECK_PREFIX: &str = "Check:";

/// `Check: r - b = a.` for `a + b = r`: the last operation undone by its inverse. `None` when
/// a product has no non-zero factor to divide by.
pub fn check_line(op: &Op) -> Option<String> {
    let (r, lhs_op, by, back) = match op.op {
        '+' => (op.result, '-', op.b, op.a),
        '-' => (op.result, '+', op.b, op.a),
        '*' if op.b != Q::from_integer(0) => (op.result, '/', op.b, op.a),
        '*' if op.a != Q::from_integer(0) => (op.result, '/', op.a, op.b),
        _ => return None,
    };
    Some(format!(
        "{CHECK_PREFIX} {} {lhs_op} {} = {}.",
        fmt_q(r),
        operand(by),
        fmt_q(back)
    ))
}

/// A right-hand operand: negatives and fractions in parentheses, so `r - (-3)` and `r / (3/5)`
/// read unambiguously.
fn operand(v: Q) -> String {
    if v.is_integer() && v >= Q::from_integer(0) {
        fmt_q(v)
    } else {
        format!("({})", fmt_q(v))
    }
}

/// A response split into the parts of the layout. Parsing is lenient: the opener may be
/// missing, and lines after the answer line are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed<'a> {
    /// The opener, when the first line is one.
    pub opener: Option<Style>,
    /// Lines between the opener and the answer line that are not re-checks.
    pub steps: Vec<&'a str>,
    /// Whether any line starts with `Check:`.
    pub checked: bool,
    /// The answer line: the first line stating an answer (`The final answer is`, `The answer
    /// is`, a `\boxed{}`), else the last line (a bare `<subject> = X.` ending). `None` when the
    /// response has no line after the opener.
    pub answer_line: Option<&'a str>,
}

impl Parsed<'_> {
    /// No working: the direct opener, or no step line before the answer line.
    pub fn is_direct(&self) -> bool {
        self.opener == Some(Style::Direct) || self.steps.is_empty()
    }
}

fn states_answer(line: &str) -> bool {
    line.starts_with("The final answer is")
        || line.starts_with("The answer is")
        || line.contains("\\boxed{")
}

pub fn parse(response: &str) -> Parsed<'_> {
    let lines: Vec<&str> = response
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let checked = lines.iter().any(|l| l.starts_with(CHECK_PREFIX));
    let opener = match lines.first() {
        Some(&l) if l == WORKING_OPENER => Some(Style::Worked),
        Some(&l) if l == DIRECT_OPENER => Some(Style::Direct),
        _ => None,
    };
    let body = &lines[opener.is_some() as usize..];
    let Some(end) = body
        .iter()
        .position(|l| states_answer(l))
        .or_else(|| body.len().checked_sub(1))
    else {
        return Parsed {
            opener,
            checked,
            ..Parsed::default()
        };
    };
    Parsed {
        opener,
        steps: body[..end]
            .iter()
            .copied()
            .filter(|l| !l.starts_with(CHECK_PREFIX))
            .collect(),
        checked,
        answer_line: Some(body[end]),
    }
}

/// The numbers a line states, in order, as written: `-3`, `7`, `3` for `x = -3 and 7/3`. A `-`
/// is a sign only where it cannot be a binary minus (at the start, after a space, `(` or `=`
/// with a digit right after it).
pub fn numbers(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut start = i;
        if i > 0 && bytes[i - 1] == b'-' {
            let before = if i >= 2 { Some(bytes[i - 2]) } else { None };
            if matches!(before, None | Some(b' ' | b'(' | b'=' | b':' | b',')) {
                start = i - 1;
            }
        }
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        out.push(&line[start..i]);
    }
    out
}

/// Whether the working `steps` states a value other than the gold working's: compared line by
/// line on the numbers each line states; a missing or extra line counts as a slip.
pub fn working_slips(steps: &[&str], gold: &[String]) -> bool {
    steps.len() != gold.len()
        || steps
            .iter()
            .zip(gold)
            .any(|(s, g)| numbers(s) != numbers(g))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calc::q;

    #[test]
    fn numbers_keep_signs_but_not_minus_signs() {
        assert_eq!(numbers("Finally, 27 - 7 = -20."), ["27", "7", "-20"]);
        assert_eq!(numbers("-3x + 5 = 7/3"), ["-3", "5", "7", "3"]);
        assert_eq!(numbers("Check: 4 - (-3) = 7."), ["4", "-3", "7"]);
        assert_eq!(
            numbers("25% of 80 is 80 * 25 / 100."),
            ["25", "80", "80", "25", "100"]
        );
        assert!(numbers("no digits").is_empty());
    }

    #[test]
    fn check_lines_invert_the_operation() {
        let op = |a: i64, op: char, b: i64, result: i64| Op {
            a: q(a),
            op,
            b: q(b),
            result: q(result),
        };
        assert_eq!(
            check_line(&op(27, '+', 7, 34)).unwrap(),
            "Check: 34 - 7 = 27."
        );
        assert_eq!(
            check_line(&op(5, '-', -3, 8)).unwrap(),
            "Check: 8 + (-3) = 5."
        );
        assert_eq!(
            check_line(&op(6, '*', 4, 24)).unwrap(),
            "Check: 24 / 4 = 6."
        );
        assert_eq!(check_line(&op(6, '*', 0, 0)).unwrap(), "Check: 0 / 6 = 0.");
        assert_eq!(check_line(&op(0, '*', 0, 0)), None);
        let frac = Op {
            a: Q::new(3, 5),
            op: '*',
            b: q(100),
            result: q(60),
        };
        assert_eq!(check_line(&frac).unwrap(), "Check: 60 / 100 = 3/5.");
    }

    #[test]
    fn parse_finds_opener_steps_checks_and_answer() {
        let p = parse("Working:\nFirst, 1 + 2 = 3.\nCheck: 3 - 2 = 1.\nThe answer is 3.\nextra");
        assert_eq!(p.opener, Some(Style::Worked));
        assert_eq!(p.steps, ["First, 1 + 2 = 3."]);
        assert!(p.checked && !p.is_direct());
        assert_eq!(p.answer_line, Some("The answer is 3."));
        // No opener, a bare ending: the last line is the answer line.
        let p = parse("First, 1 + 2 = 3.\nx = 3.");
        assert_eq!((p.opener, p.steps.len()), (None, 1));
        assert_eq!(p.answer_line, Some("x = 3."));
        // Only an answer line: direct.
        assert!(parse("The final answer is \\boxed{3}.").is_direct());
        let p = parse("At a glance:\nThe answer is 3.");
        assert!(p.is_direct() && !p.checked);
        assert_eq!(
            parse("Working:\n"),
            Parsed {
                opener: Some(Style::Worked),
                ..Parsed::default()
            }
        );
    }
}
