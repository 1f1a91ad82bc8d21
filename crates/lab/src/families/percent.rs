//! Percentages: `p% of n` (level 1), a discount or increase (level 2), "m is what percent of
//! n" (level 3). Numbers are chosen so that every answer is an integer.
use super::{pick, NAMES};
use crate::calc::{fmt_q, q, Calc};
use crate::task::Worked;
use num_integer::Integer;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const PERCENTS: &[i64] = &[5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80];

/// A base n for which n * p / 100 is an integer.
fn base_for(rng: &mut ChaCha8Rng, p: i64, max_mult: i64) -> i64 {
    let step = 100 / p.gcd(&100);
    step * rng.gen_range(1..=max_mult)
}

pub fn worked(rng: &mut ChaCha8Rng, difficulty: u8, calc: &mut Calc) -> Worked {
    let p = *pick(rng, PERCENTS);
    let mut steps = Vec::new();
    match difficulty {
        1 => {
            let n = base_for(rng, p, 12);
            steps.push(format!("{p}% of {n} is {n} * {p} / 100."));
            let x = calc.mul(q(n), q(p));
            let y = calc.div(x, q(100));
            steps.push(format!(
                "{n} * {p} = {}, and {} / 100 = {}.",
                fmt_q(x),
                fmt_q(x),
                fmt_q(y)
            ));
            Worked {
                question: format!("What is {p}% of {n}?"),
                steps,
                subject: format!("{p}% of {n}"),
                answer: y,
            }
        }
        2 => {
            let n = base_for(rng, p, 10);
            let item = *pick(rng, &["jacket", "bike", "lamp", "book", "chair", "game"]);
            let up = rng.gen_bool(0.4);
            let question = if up {
                format!("A {item} costs {n} dollars. Its price rises by {p}%. What is the new price in dollars?")
            } else {
                format!("A {item} costs {n} dollars and is on sale for {p}% off. What is the sale price in dollars?")
            };
            let x = calc.mul(q(n), q(p));
            let d = calc.div(x, q(100));
            let what = if up { "increase" } else { "discount" };
            steps.push(format!(
                "The {what} is {n} * {p} / 100 = {} / 100 = {}.",
                fmt_q(x),
                fmt_q(d)
            ));
            let price = if up {
                calc.add(q(n), d)
            } else {
                calc.sub(q(n), d)
            };
            let sign = if up { '+' } else { '-' };
            steps.push(format!(
                "The new price is {n} {sign} {} = {}.",
                fmt_q(d),
                fmt_q(price)
            ));
            Worked {
                question,
                steps,
                subject: "the new price".into(),
                answer: price,
            }
        }
        _ => {
            let n = base_for(rng, p, 10);
            let m = n * p / 100;
            let name = *pick(rng, NAMES);
            let question = match rng.gen_range(0..2) {
                0 => format!("{m} is what percent of {n}?"),
                _ => {
                    format!("{name} answered {m} of {n} questions correctly. What percent is that?")
                }
            };
            let f = calc.div(q(m), q(n));
            if f.denom() == &n && f.numer() == &m {
                steps.push(format!("The fraction is {m}/{n}."));
            } else {
                steps.push(format!("The fraction is {m}/{n} = {}.", fmt_q(f)));
            }
            let pct = calc.mul(f, q(100));
            steps.push(format!(
                "As a percent: {} * 100 = {}.",
                fmt_q(f),
                fmt_q(pct)
            ));
            Worked {
                question,
                steps,
                subject: "the percent".into(),
                answer: pct,
            }
        }
    }
}
