//! Remainders: `a mod m` (level 1), "the remainder when a is divided by m" (level 2), and of a
//! product or sum (level 3).
use crate::calc::{fmt_q, q, Calc, Q};
use crate::task::Worked;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Steps from `a` (as computed) to `a mod m`; the quotient is read off the value at hand.
fn reduce(a: Q, m: i64, calc: &mut Calc, steps: &mut Vec<String>) -> Q {
    let quotient = a.floor().to_integer().div_euclid(m);
    let x = calc.mul(q(m), q(quotient));
    let r = calc.sub(a, x);
    steps.push(format!(
        "{} divided by {m} is {quotient} with a remainder: {m} * {quotient} = {}.",
        fmt_q(a),
        fmt_q(x)
    ));
    steps.push(format!("{} - {} = {}.", fmt_q(a), fmt_q(x), fmt_q(r)));
    r
}

pub fn worked(rng: &mut ChaCha8Rng, difficulty: u8, calc: &mut Calc) -> Worked {
    let mut steps = Vec::new();
    match difficulty {
        1 => {
            let (a, m) = (rng.gen_range(10..=99), rng.gen_range(2..=9));
            let r = reduce(q(a), m, calc, &mut steps);
            Worked {
                question: format!("Compute {a} mod {m}."),
                steps,
                subject: format!("{a} mod {m}"),
                answer: r,
            }
        }
        2 => {
            let (a, m) = (rng.gen_range(100..=999), rng.gen_range(3..=13));
            let r = reduce(q(a), m, calc, &mut steps);
            Worked {
                question: format!("What is the remainder when {a} is divided by {m}?"),
                steps,
                subject: format!("{a} mod {m}"),
                answer: r,
            }
        }
        _ => {
            let (a, b, m) = (
                rng.gen_range(6..=40),
                rng.gen_range(6..=40),
                rng.gen_range(3..=11),
            );
            let product = rng.gen_bool(0.6);
            let (expr, v) = if product {
                let v = calc.mul(q(a), q(b));
                steps.push(format!("{a} * {b} = {}.", fmt_q(v)));
                (format!("({a} * {b}) mod {m}"), v)
            } else {
                let v = calc.add(q(a), q(b));
                steps.push(format!("{a} + {b} = {}.", fmt_q(v)));
                (format!("({a} + {b}) mod {m}"), v)
            };
            let r = reduce(v, m, calc, &mut steps);
            Worked {
                question: format!("Compute {expr}."),
                steps,
                subject: expr,
                answer: r,
            }
        }
    }
}
