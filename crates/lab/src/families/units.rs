//! Word problems with units: distance, counting, money, time conversion.
use super::{pick, NAMES};
use crate::calc::{fmt_q, q, Calc};
use crate::task::Worked;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub fn worked(rng: &mut ChaCha8Rng, difficulty: u8, calc: &mut Calc) -> Worked {
    let name = *pick(rng, NAMES);
    let kind = rng.gen_range(0..3);
    let mut steps = Vec::new();
    let (question, subject, answer) = match (difficulty, kind) {
        (1, 0) => {
            let (v, t) = (rng.gen_range(20..=90), rng.gen_range(2..=6));
            let d = calc.mul(q(v), q(t));
            steps.push(format!(
                "Distance is speed times time: {v} * {t} = {}.",
                fmt_q(d)
            ));
            (
                format!(
                    "A train travels at {v} km per hour. How many km does it travel in {t} hours?"
                ),
                "the distance in km",
                d,
            )
        }
        (1, 1) => {
            let (b, k) = (rng.gen_range(2..=9), rng.gen_range(3..=15));
            let n = calc.mul(q(b), q(k));
            steps.push(format!(
                "{name} has {b} boxes of {k} pencils: {b} * {k} = {}.",
                fmt_q(n)
            ));
            (format!("{name} has {b} boxes with {k} pencils in each box. How many pencils does {name} have?"), "the number of pencils", n)
        }
        (1, _) => {
            let h = rng.gen_range(2..=12);
            let m = calc.mul(q(h), q(60));
            steps.push(format!(
                "Each hour has 60 minutes: {h} * 60 = {}.",
                fmt_q(m)
            ));
            (
                format!("How many minutes are in {h} hours?"),
                "the number of minutes",
                m,
            )
        }
        (2, 0) => {
            let (n, p) = (rng.gen_range(2..=8), rng.gen_range(2..=9));
            let bill = *[20i64, 50, 100]
                .iter()
                .find(|&&b| b > n * p)
                .unwrap_or(&100);
            let cost = calc.mul(q(n), q(p));
            steps.push(format!(
                "The notebooks cost {n} * {p} = {} dollars.",
                fmt_q(cost)
            ));
            let change = calc.sub(q(bill), cost);
            steps.push(format!(
                "The change is {bill} - {} = {} dollars.",
                fmt_q(cost),
                fmt_q(change)
            ));
            (
                format!("{name} buys {n} notebooks at {p} dollars each and pays with a {bill} dollar bill. How much change does {name} get, in dollars?"),
                "the change in dollars",
                change,
            )
        }
        (2, 1) => {
            let (h, m) = (rng.gen_range(1..=9), rng.gen_range(5..=55));
            let x = calc.mul(q(h), q(60));
            steps.push(format!("{h} hours is {h} * 60 = {} minutes.", fmt_q(x)));
            let y = calc.add(x, q(m));
            steps.push(format!(
                "Adding {m} minutes: {} + {m} = {}.",
                fmt_q(x),
                fmt_q(y)
            ));
            (
                format!("How many minutes are in {h} hours and {m} minutes?"),
                "the number of minutes",
                y,
            )
        }
        (2, _) => {
            let (f, t) = (rng.gen_range(3..=15), rng.gen_range(4..=20));
            let total = f * t;
            let minutes = calc.div(q(total), q(f));
            steps.push(format!(
                "Time is volume divided by rate: {total} / {f} = {}.",
                fmt_q(minutes)
            ));
            (
                format!("A tank holds {total} liters. {name} fills it at {f} liters per minute. How many minutes does it take to fill the tank?"),
                "the number of minutes",
                minutes,
            )
        }
        (_, 0) => {
            let (r, h) = (rng.gen_range(6..=24), rng.gen_range(3..=9));
            let s = rng.gen_range(5..=r * h - 1);
            let made = calc.mul(q(r), q(h));
            steps.push(format!(
                "The baker makes {r} * {h} = {} loaves.",
                fmt_q(made)
            ));
            let left = calc.sub(made, q(s));
            steps.push(format!(
                "After selling {s}: {} - {s} = {}.",
                fmt_q(made),
                fmt_q(left)
            ));
            (
                format!("A baker makes {r} loaves per hour for {h} hours and sells {s} loaves. How many loaves are left?"),
                "the number of loaves left",
                left,
            )
        }
        (_, 1) => {
            let (a, t, b) = (
                rng.gen_range(40..=90),
                rng.gen_range(5..=30),
                rng.gen_range(50..=500),
            );
            let walked = calc.mul(q(a), q(t));
            steps.push(format!(
                "{name} first walks {a} * {t} = {} meters.",
                fmt_q(walked)
            ));
            let total = calc.add(walked, q(b));
            steps.push(format!(
                "In total: {} + {b} = {} meters.",
                fmt_q(walked),
                fmt_q(total)
            ));
            (
                format!("{name} walks {a} meters per minute for {t} minutes and then {b} more meters. How many meters does {name} walk in total?"),
                "the total distance in meters",
                total,
            )
        }
        (_, _) => {
            let (h, m) = (rng.gen_range(1..=5), rng.gen_range(1..=59));
            let x = calc.mul(q(h), q(60));
            let y = calc.add(x, q(m));
            steps.push(format!(
                "{h} hours {m} minutes is {h} * 60 + {m} = {} + {m} = {} minutes.",
                fmt_q(x),
                fmt_q(y)
            ));
            let s = calc.mul(y, q(60));
            steps.push(format!("In seconds: {} * 60 = {}.", fmt_q(y), fmt_q(s)));
            (
                format!("How many seconds are in {h} hours and {m} minutes?"),
                "the number of seconds",
                s,
            )
        }
    };
    Worked {
        question,
        steps,
        subject: subject.into(),
        answer,
    }
}
