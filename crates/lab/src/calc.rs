//! Exact arithmetic that writes worked solutions, with an optional injected slip.
//!
//! A family's solver performs every operation through a [`Calc`]. The exact calculator gives the
//! gold answer; a slipping calculator returns a wrong result (off by a small delta) at one chosen
//! operation, and since later steps use the returned value the error propagates naturally, like
//! a human arithmetic slip. Divisions never slip (they are simplifications, not arithmetic).
use num_rational::Rational64;

/// Exact rational values of the lab's problems.
pub type Q = Rational64;

pub fn q(n: i64) -> Q {
    Q::from_integer(n)
}

/// `5`, `-3`, `7/3`, `-7/3`: the answer notation of the lab (accepted by the checker).
pub fn fmt_q(v: Q) -> String {
    if v.is_integer() {
        v.numer().to_string()
    } else {
        format!("{}/{}", v.numer(), v.denom())
    }
}

/// Where a slip happens: the `at`-th slip-able operation (0-based) is off by `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slip {
    pub at: usize,
    pub delta: i64,
}

/// One performed operation `a op b = result` (`op` is `+`, `-` or `*`), with the result as
/// returned (off by the slip's delta at the slipping operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub a: Q,
    pub op: char,
    pub b: Q,
    pub result: Q,
}

#[derive(Debug, Clone, Default)]
pub struct Calc {
    ops: usize,
    slip: Option<Slip>,
    fired: bool,
    last: Option<Op>,
}

impl Calc {
    pub fn exact() -> Self {
        Self::default()
    }

    pub fn with_slip(slip: Slip) -> Self {
        Self {
            slip: Some(slip),
            ..Self::default()
        }
    }

    /// Slip-able operations performed so far.
    pub fn ops(&self) -> usize {
        self.ops
    }

    /// Whether the slip was applied.
    pub fn slipped(&self) -> bool {
        self.fired
    }

    /// The last slip-able operation performed.
    pub fn last_op(&self) -> Option<Op> {
        self.last
    }

    fn record(&mut self, a: Q, op: char, b: Q, exact: Q) -> Q {
        let i = self.ops;
        self.ops += 1;
        let result = match self.slip {
            Some(s) if s.at == i => {
                self.fired = true;
                exact + q(s.delta)
            }
            _ => exact,
        };
        self.last = Some(Op { a, op, b, result });
        result
    }

    pub fn add(&mut self, a: Q, b: Q) -> Q {
        self.record(a, '+', b, a + b)
    }

    pub fn sub(&mut self, a: Q, b: Q) -> Q {
        self.record(a, '-', b, a - b)
    }

    pub fn mul(&mut self, a: Q, b: Q) -> Q {
        self.record(a, '*', b, a * b)
    }

    /// Exact division (never slips). `b` must be non-zero; the families guarantee it.
    pub fn div(&mut self, a: Q, b: Q) -> Q {
        a / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slip_fires_once_at_its_operation_and_propagates() {
        let mut c = Calc::with_slip(Slip { at: 1, delta: 2 });
        let a = c.add(q(3), q(4));
        let b = c.mul(a, q(2));
        let d = c.sub(b, q(1));
        assert_eq!((a, b, d), (q(7), q(16), q(15)));
        assert!(c.slipped());
        assert_eq!(c.ops(), 3);
        let last = Op {
            a: q(16),
            op: '-',
            b: q(1),
            result: q(15),
        };
        assert_eq!(c.last_op(), Some(last));
        c.div(q(15), q(3));
        assert_eq!(c.last_op(), Some(last), "divisions are not recorded");
        let mut e = Calc::exact();
        assert_eq!(e.mul(e.clone().add(q(3), q(4)), q(2)), q(14));
        assert!(!e.slipped());
    }

    #[test]
    fn formats_integers_and_fractions() {
        assert_eq!(fmt_q(q(-5)), "-5");
        assert_eq!(fmt_q(Q::new(14, 6)), "7/3");
        assert_eq!(fmt_q(Q::new(3, -4)), "-3/4");
    }
}
