//! Linear equations in x: `a x + b = c` (level 1-2, level 2 with some fraction answers) and
//! `a x + b = c x + d` (level 3).
use crate::calc::{fmt_q, q, Calc, Q};
use crate::task::Worked;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `3x`, `-x`, `x`.
fn coef(a: i64) -> String {
    match a {
        1 => "x".into(),
        -1 => "-x".into(),
        _ => format!("{a}x"),
    }
}

/// `3x + 5`, `3x - 5`.
fn side(a: i64, b: i64) -> String {
    if b >= 0 {
        format!("{} + {b}", coef(a))
    } else {
        format!("{} - {}", coef(a), -b)
    }
}

fn nonzero(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    loop {
        let v = rng.gen_range(lo..=hi);
        if v != 0 {
            return v;
        }
    }
}

/// Steps taking `a x + b = rhs` (already shown) to x; returns x.
fn isolate(a: Q, b: i64, rhs: Q, calc: &mut Calc, steps: &mut Vec<String>) -> Q {
    let k = if b >= 0 {
        let k = calc.sub(rhs, q(b));
        steps.push(format!(
            "Subtract {b} from both sides: {} = {} - {b} = {}.",
            coef_q(a),
            fmt_q(rhs),
            fmt_q(k)
        ));
        k
    } else {
        let k = calc.add(rhs, q(-b));
        steps.push(format!(
            "Add {} to both sides: {} = {} + {} = {}.",
            -b,
            coef_q(a),
            fmt_q(rhs),
            -b,
            fmt_q(k)
        ));
        k
    };
    if a == q(0) {
        // Only reachable after a slip made the coefficient 0: the solver gives up on x.
        steps.push(format!("Then 0 = {}, so x = 0.", fmt_q(k)));
        return q(0);
    }
    let x = calc.div(k, a);
    steps.push(format!(
        "Divide both sides by {}: x = {} / {} = {}.",
        fmt_q(a),
        fmt_q(k),
        fmt_q(a),
        fmt_q(x)
    ));
    x
}

fn coef_q(a: Q) -> String {
    if a.is_integer() {
        coef(*a.numer())
    } else {
        format!("({})x", fmt_q(a))
    }
}

pub fn worked(rng: &mut ChaCha8Rng, difficulty: u8, calc: &mut Calc) -> Worked {
    let mut steps = Vec::new();
    let (question_eq, x) = match difficulty {
        1 | 2 => {
            let a = rng.gen_range(2..=if difficulty == 1 { 9 } else { 12 });
            let b = nonzero(rng, -20, 20);
            // Level 2 has a fraction answer 40% of the time: c is then drawn freely.
            let c = if difficulty == 2 && rng.gen_bool(0.4) {
                rng.gen_range(-30..=40)
            } else {
                a * rng.gen_range(-10..=10) + b
            };
            let eq = format!("{} = {c}", side(a, b));
            let x = isolate(q(a), b, q(c), calc, &mut steps);
            (eq, x)
        }
        _ => {
            let a = rng.gen_range(2..=12);
            let mut c = rng.gen_range(1..=9);
            if c == a {
                c = a - 1;
            }
            let b = nonzero(rng, -20, 20);
            let d = nonzero(rng, -20, 20);
            let eq = format!("{} = {}", side(a, b), side(c, d));
            let e = calc.sub(q(a), q(c));
            steps.push(format!(
                "Subtract {} from both sides: {} = {d}.",
                coef(c),
                side_q(e, b)
            ));
            let x = isolate(e, b, q(d), calc, &mut steps);
            (eq, x)
        }
    };
    let question = match rng.gen_range(0..3) {
        0 => format!("Solve for x: {question_eq}."),
        1 => format!("Find x if {question_eq}."),
        _ => format!("What value of x satisfies {question_eq}?"),
    };
    Worked {
        question,
        steps,
        subject: "x".into(),
        answer: x,
    }
}

fn side_q(a: Q, b: i64) -> String {
    let c = coef_q(a);
    if b >= 0 {
        format!("{c} + {b}")
    } else {
        format!("{c} - {}", -b)
    }
}
