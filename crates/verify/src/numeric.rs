//! Numeric evaluation in double-precision complex arithmetic: the fallback for expressions
//! the exact CAS cannot decide (trigonometry, logarithms, nested roots, symbolic powers).
//!
//! Free symbols are given deterministic pseudo-random, non-integer values at several points,
//! half of them negative, so identities must hold beyond a lucky sample. Odd roots of negative
//! reals are taken real (`∛-8 = -2`), matching the exact CAS.

use crate::ast::{Func, Node};
use crate::budget::Budget;
use num_complex::Complex64;
use num_traits::ToPrimitive;

/// Number of sample points used for expressions with free symbols.
pub const POINTS: u32 = 5;

/// Extra sample points, of growing magnitude, for expressions with step functions (`\lfloor`,
/// `\lceil`, `mod`) of symbols: near zero `\lfloor n/2 \rfloor` and `\lfloor n/12 \rfloor` agree.
pub const WIDE_POINTS: u32 = 16;

/// Whether the node applies a step function to an expression with symbols.
pub fn has_step_function(n: &Node) -> bool {
    let mut found = false;
    n.visit(&mut |x| {
        if let Node::Func(Func::Floor | Func::Ceil | Func::Mod, args) = x {
            found |= args.iter().any(|a| a.has_symbols());
        }
    });
    found
}

/// Deterministic value of symbol `name` at sample point `k`: |v| in [0.35, 2.4], non-integer,
/// for `k < POINTS`; beyond, the same values scaled by ever larger factors.
fn symbol_value(name: &str, k: u32) -> f64 {
    let scale = if k < POINTS {
        1.0
    } else {
        1.0 + 7.3 * f64::from(k - POINTS + 1)
    };
    // FNV-1a over the name and the point index.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes().chain(k.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    let v = (0.35 + 2.05 * unit) * scale;
    if k % 2 == 1 {
        -v
    } else {
        v
    }
}

/// Evaluate an expression without free symbols.
pub fn eval_constant(n: &Node, budget: &mut Budget) -> Option<Complex64> {
    eval(n, 0, budget)
}

/// Evaluate at sample point `k`. None when undefined, non-finite or over budget.
pub fn eval(n: &Node, k: u32, budget: &mut Budget) -> Option<Complex64> {
    budget.spend(1).ok()?;
    let c = |x: f64| Complex64::new(x, 0.0);
    let v = match n {
        Node::Num { value, .. } => c(value.to_f64()?),
        Node::Sym(s) => c(symbol_value(s, k)),
        Node::Pi => c(std::f64::consts::PI),
        Node::E => c(std::f64::consts::E),
        Node::I => Complex64::new(0.0, 1.0),
        Node::Add(v) => {
            let mut acc = c(0.0);
            for t in v {
                acc += eval(t, k, budget)?;
            }
            acc
        }
        Node::Mul(v) => {
            let mut acc = c(1.0);
            for t in v {
                acc *= eval(t, k, budget)?;
            }
            acc
        }
        Node::Neg(a) => -eval(a, k, budget)?,
        Node::Div(a, b) => {
            let d = eval(b, k, budget)?;
            if d.norm() == 0.0 {
                return None;
            }
            eval(a, k, budget)? / d
        }
        Node::Percent(a) => eval(a, k, budget)? / 100.0,
        Node::Pow(a, e) => {
            let base = eval(a, k, budget)?;
            let ex = eval(e, k, budget)?;
            power(base, ex, e)
        }
        Node::Factorial(a) => {
            let x = eval(a, k, budget)?;
            if x.im.abs() > 1e-12
                || x.re < 0.0
                || x.re > 170.0
                || (x.re - x.re.round()).abs() > 1e-9
            {
                return None;
            }
            c((1..=x.re.round() as u64).map(|j| j as f64).product())
        }
        Node::Func(f, args) => {
            let mut xs = Vec::with_capacity(args.len());
            for a in args {
                xs.push(eval(a, k, budget)?);
            }
            func(*f, &xs)?
        }
        Node::Apply(name, args) => {
            // An unknown function: a fixed smooth function of its arguments and name, so
            // f(x) = f(x) and f(x) ≠ f(y) numerically.
            let mut acc = c(symbol_value(name, 99));
            for (j, a) in args.iter().enumerate() {
                let x = eval(a, k, budget)?;
                acc += (x * (1.3 + j as f64)).sin() + x * x * 0.17;
            }
            acc
        }
        _ => return None,
    };
    if v.re.is_finite() && v.im.is_finite() {
        Some(v)
    } else {
        None
    }
}

fn power(base: Complex64, ex: Complex64, ex_node: &Node) -> Complex64 {
    // Real odd roots of negative reals: x^(p/q) with q odd.
    if base.im == 0.0 && base.re < 0.0 && ex.im == 0.0 {
        if let Some(q) = odd_denominator(ex_node) {
            let p = ex.re * q as f64;
            if (p - p.round()).abs() < 1e-9 {
                let mag = (-base.re).powf(ex.re);
                let sign = if (p.round() as i64) % 2 == 0 {
                    1.0
                } else {
                    -1.0
                };
                return Complex64::new(sign * mag, 0.0);
            }
        }
    }
    if ex.im == 0.0 && ex.re.fract() == 0.0 && ex.re.abs() <= 1e6 {
        return base.powi(ex.re as i32);
    }
    if base.norm() == 0.0 {
        return Complex64::new(0.0, 0.0);
    }
    base.powc(ex)
}

/// Denominator of a literal rational exponent when it is odd (e.g. `1/3`, `2/3`).
fn odd_denominator(e: &Node) -> Option<u64> {
    match e {
        Node::Div(a, b) => {
            let den = match &**b {
                Node::Num { value, .. } if value.is_integer() => value.to_integer().to_u64()?,
                _ => return None,
            };
            match &**a {
                Node::Num { value, .. } if value.is_integer() => {}
                _ => return None,
            }
            (den % 2 == 1).then_some(den)
        }
        _ => None,
    }
}

fn func(f: Func, xs: &[Complex64]) -> Option<Complex64> {
    let arity_ok = match f {
        Func::Binom | Func::Mod => xs.len() == 2,
        Func::Log => (1..=2).contains(&xs.len()),
        Func::Gcd | Func::Lcm | Func::Min | Func::Max => !xs.is_empty(),
        _ => xs.len() == 1,
    };
    if !arity_ok {
        return None;
    }
    let x = xs[0];
    let real = |z: Complex64| (z.im.abs() < 1e-12).then_some(z.re);
    let int = |z: Complex64| {
        let r = real(z)?;
        ((r - r.round()).abs() < 1e-9 && r.abs() < 9e15).then_some(r.round() as i64)
    };
    let c = |v: f64| Complex64::new(v, 0.0);
    Some(match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Cot => x.cos() / x.sin(),
        Func::Sec => 1.0 / x.cos(),
        Func::Csc => 1.0 / x.sin(),
        Func::Asin => x.asin(),
        Func::Acos => x.acos(),
        Func::Atan => x.atan(),
        Func::Sinh => x.sinh(),
        Func::Cosh => x.cosh(),
        Func::Tanh => x.tanh(),
        Func::Asinh => x.asinh(),
        Func::Acosh => x.acosh(),
        Func::Atanh => x.atanh(),
        Func::Ln => x.ln(),
        Func::Log => {
            if xs.len() == 2 {
                x.ln() / xs[1].ln()
            } else {
                x.ln()
            }
        }
        Func::Exp => x.exp(),
        Func::Abs => c(x.norm()),
        Func::Floor => c(real(x)?.floor()),
        Func::Ceil => c(real(x)?.ceil()),
        Func::Min | Func::Max => {
            let mut best = real(x)?;
            for z in &xs[1..] {
                let r = real(*z)?;
                best = if f == Func::Min {
                    best.min(r)
                } else {
                    best.max(r)
                };
            }
            c(best)
        }
        Func::Mod => {
            let a = real(x)?;
            let n = real(xs[1])?;
            if n == 0.0 {
                return None;
            }
            c(a - n * (a / n).floor())
        }
        Func::Gcd | Func::Lcm => {
            let mut acc = int(x)?.unsigned_abs();
            for z in &xs[1..] {
                let v = int(*z)?.unsigned_abs();
                let g = gcd(acc, v);
                acc = if f == Func::Gcd {
                    g
                } else {
                    acc.checked_div(g).map_or(0, |q| q.saturating_mul(v))
                };
            }
            c(acc as f64)
        }
        Func::Binom => {
            let n = int(x)?;
            let k = int(xs[1])?;
            if k < 0 || k > n || n > 1000 {
                return None;
            }
            let mut acc = 1.0f64;
            for j in 0..k {
                acc = acc * (n - j) as f64 / (j + 1) as f64;
            }
            c(acc)
        }
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Do two complex values agree within relative tolerance `tol` (absolute 1e-12 near zero)?
pub fn close(a: Complex64, b: Complex64, tol: f64) -> bool {
    let diff = (a - b).norm();
    diff <= tol * a.norm().max(b.norm()) || diff <= 1e-12
}
