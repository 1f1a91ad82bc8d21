//! Fractions: `a/b + c/d` (level 1), `+`/`-` (level 2), `*`/`divided by` (level 3).
use crate::calc::{fmt_q, q, Calc, Q};
use crate::task::Worked;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

fn fraction(rng: &mut ChaCha8Rng, max_den: i64) -> (i64, i64) {
    let b = rng.gen_range(2..=max_den);
    let a = rng.gen_range(1..=b + 1);
    // `b/b` reads oddly; make it a proper fraction.
    (if a == b { b - 1 } else { a }, b)
}

/// The closing simplification of `num/den` (both as computed, possibly after a slip).
fn simplify(num: Q, den: Q, calc: &mut Calc, steps: &mut Vec<String>) -> Q {
    if den == q(0) {
        steps.push("The denominator is 0, so the value is 0.".into());
        return q(0);
    }
    let v = calc.div(num, den);
    let shown = format!("{}/{}", fmt_q(num), fmt_q(den));
    if num.is_integer() && den.is_integer() && v.denom() == den.numer() && v.numer() == num.numer()
    {
        steps.push(format!("{shown} is already in lowest terms."));
    } else {
        steps.push(format!("Simplify: {shown} = {}.", fmt_q(v)));
    }
    v
}

pub fn worked(rng: &mut ChaCha8Rng, difficulty: u8, calc: &mut Calc) -> Worked {
    let max_den = if difficulty == 1 { 6 } else { 9 };
    let (a, b) = fraction(rng, max_den);
    let (c, d) = fraction(rng, max_den);
    let mut steps = Vec::new();
    let op = match difficulty {
        1 => '+',
        2 => {
            if rng.gen_bool(0.5) {
                '+'
            } else {
                '-'
            }
        }
        _ => {
            if rng.gen_bool(0.5) {
                '*'
            } else {
                '/'
            }
        }
    };
    let (expr, answer) = match op {
        '+' | '-' => {
            let expr = format!("{a}/{b} {op} {c}/{d}");
            steps.push(format!("Use the common denominator {b} * {d}: {expr} = ({a} * {d} {op} {c} * {b}) / ({b} * {d})."));
            let x = calc.mul(q(a), q(d));
            let y = calc.mul(q(c), q(b));
            let z = calc.mul(q(b), q(d));
            steps.push(format!(
                "{a} * {d} = {}, {c} * {b} = {}, {b} * {d} = {}.",
                fmt_q(x),
                fmt_q(y),
                fmt_q(z)
            ));
            let n = if op == '+' {
                calc.add(x, y)
            } else {
                calc.sub(x, y)
            };
            steps.push(format!(
                "{} {op} {} = {}, so the result is {}/{}.",
                fmt_q(x),
                fmt_q(y),
                fmt_q(n),
                fmt_q(n),
                fmt_q(z)
            ));
            (expr, simplify(n, z, calc, &mut steps))
        }
        '*' => {
            let expr = format!("{a}/{b} * {c}/{d}");
            steps.push(format!(
                "Multiply numerators and denominators: {expr} = ({a} * {c}) / ({b} * {d})."
            ));
            let n = calc.mul(q(a), q(c));
            let z = calc.mul(q(b), q(d));
            steps.push(format!(
                "{a} * {c} = {}, {b} * {d} = {}.",
                fmt_q(n),
                fmt_q(z)
            ));
            (expr, simplify(n, z, calc, &mut steps))
        }
        _ => {
            let expr = format!("{a}/{b} divided by {c}/{d}");
            steps.push(format!(
                "Dividing by {c}/{d} is multiplying by {d}/{c}: ({a} * {d}) / ({b} * {c})."
            ));
            let n = calc.mul(q(a), q(d));
            let z = calc.mul(q(b), q(c));
            steps.push(format!(
                "{a} * {d} = {}, {b} * {c} = {}.",
                fmt_q(n),
                fmt_q(z)
            ));
            (expr, simplify(n, z, calc, &mut steps))
        }
    };
    let question = match rng.gen_range(0..2) {
        0 => format!("Compute {expr}. Give the answer as a fraction in lowest terms."),
        _ => format!("What is {expr}?"),
    };
    Worked {
        question,
        steps,
        subject: expr,
        answer,
    }
}
