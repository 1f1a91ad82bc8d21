//! Multi-step integer arithmetic: a left-to-right chain of +, -, * with parentheses where
//! precedence would otherwise change the order, e.g. `(12 + 7) * 3 - 5`.
use super::pick;
use crate::calc::{fmt_q, q, Calc};
use crate::task::Worked;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub fn worked(rng: &mut ChaCha8Rng, difficulty: u8, calc: &mut Calc) -> Worked {
    let (ops, max, mul_max) = match difficulty {
        1 => (2, 20, 9),
        2 => (3, 50, 9),
        _ => (4, 99, 12),
    };
    let first = rng.gen_range(1..=max);
    let mut expr = first.to_string();
    let mut value = q(first);
    let mut last_additive = false;
    let mut steps = Vec::with_capacity(ops);
    for k in 0..ops {
        let op = *pick(rng, &['+', '-', '*']);
        let x = if op == '*' {
            rng.gen_range(2..=mul_max)
        } else {
            rng.gen_range(1..=max)
        };
        let next = match op {
            '+' => calc.add(value, q(x)),
            '-' => calc.sub(value, q(x)),
            _ => calc.mul(value, q(x)),
        };
        expr = if op == '*' && last_additive {
            format!("({expr}) * {x}")
        } else {
            format!("{expr} {op} {x}")
        };
        last_additive = op != '*';
        let lead = match k {
            0 => "First, ",
            _ if k + 1 == ops => "Finally, ",
            _ => "Then ",
        };
        steps.push(format!(
            "{lead}{} {op} {x} = {}.",
            fmt_q(value),
            fmt_q(next)
        ));
        value = next;
    }
    let question = match rng.gen_range(0..3) {
        0 => format!("Compute {expr}."),
        1 => format!("What is {expr}?"),
        _ => format!("Evaluate {expr}."),
    };
    Worked {
        question,
        steps,
        subject: expr,
        answer: value,
    }
}
