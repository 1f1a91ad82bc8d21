//! Deterministic work accounting.
//!
//! Every potentially expensive step (consuming a token, multiplying polynomial terms, growing a big
//! integer, evaluating a node numerically) spends work units from a [`Budget`]. When the budget
//! runs out the step fails with [`Exhausted`] and the comparison answers "not equal". This bounds
//! the running time of any input without consulting a clock, so results never depend on machine
//! load.

/// Default number of work units one `check` may spend (roughly a few milliseconds of work).
pub const DEFAULT_WORK_LIMIT: u64 = 100_000;

/// Maximum nesting depth of the parser (brackets, fractions, exponents). Recursion in every later
/// stage follows the parse tree, so this also bounds their stack use.
pub const MAX_DEPTH: u32 = 48;

/// Longest extracted answer (in bytes) that is parsed; longer answers are compared as strings.
pub const MAX_ANSWER_BYTES: usize = 2_000;

/// Largest big-integer size (in bits) a numerator or denominator may reach.
pub const MAX_BITS: u64 = 4_096;

/// Largest number of monomials a polynomial may hold.
pub const MAX_TERMS: usize = 400;

/// The work budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// Counter of work units spent against a fixed limit.
#[derive(Debug, Clone)]
pub struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget { used: 0, limit }
    }

    /// Spend `units` before doing the work they pay for. A request that would pass the limit is
    /// refused and exhausts the budget, so `used() <= limit()` always holds.
    pub fn spend(&mut self, units: u64) -> Result<(), Exhausted> {
        match self.used.checked_add(units) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ => {
                self.used = self.limit;
                Err(Exhausted)
            }
        }
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}
