//! A small exact CAS: expressions as rational functions over atoms.
//!
//! A [`RatFn`] is `num / den`, both [`Poly`]s: sums of monomials with exact rational coefficients.
//! A monomial is `sqrt(rad) * i^{0|1} * Π atom^k`, where `rad` is a square-free integer (so
//! `√8 = 2√2` and `√2·√3 = √6` automatically), `i² = -1`, and atoms are free symbols, `π`, `e`,
//! or opaque terms (function calls, roots of non-rationals, symbolic powers) named by a canonical
//! key built from their normalised arguments. Exponents may be negative (Laurent monomials).
//!
//! Two expressions are equal when `n1·d2 - n2·d1` is the zero polynomial. When no opaque atoms
//! are involved this decision is exact in both directions (distinct square-free radicals, `π`, `e`
//! and symbols are treated as independent); with opaque atoms a nonzero difference is only a
//! hint and the caller falls back to numeric evaluation.

use crate::ast::{Func, Node};
use crate::budget::{Budget, MAX_BITS, MAX_TERMS};
use crate::numeric;
use num_bigint::BigInt;
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasFail {
    /// The expression has a part the CAS cannot represent (intervals, text, infinity...).
    Unsupported,
    /// Division by an expression that is identically zero.
    DivByZero,
    /// A size or work limit was reached.
    TooBig,
}

type CResult<T> = Result<T, CasFail>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mono {
    pub vars: Vec<(Rc<str>, i64)>,
    pub rad: BigInt,
    pub imag: bool,
}

impl Mono {
    fn one() -> Mono {
        Mono {
            vars: Vec::new(),
            rad: BigInt::one(),
            imag: false,
        }
    }

    pub fn is_one(&self) -> bool {
        self.vars.is_empty() && self.rad.is_one() && !self.imag
    }
}

/// Sum of monomials with nonzero rational coefficients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poly {
    pub terms: BTreeMap<Mono, BigRational>,
}

#[derive(Clone, Debug)]
pub struct RatFn {
    pub num: Poly,
    pub den: Poly,
}

/// Conversion context: tracks whether opaque atoms were introduced.
pub struct Cas<'b> {
    pub budget: &'b mut Budget,
    pub opaque: bool,
}

fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

impl Poly {
    pub fn zero() -> Poly {
        Poly {
            terms: BTreeMap::new(),
        }
    }

    pub fn constant(c: BigRational) -> Poly {
        let mut terms = BTreeMap::new();
        if !c.is_zero() {
            terms.insert(Mono::one(), c);
        }
        Poly { terms }
    }

    pub fn is_zero(&self) -> bool {
        self.terms.is_empty()
    }

    /// The rational value when the polynomial is a plain rational constant.
    pub fn as_rational(&self) -> Option<BigRational> {
        match self.terms.len() {
            0 => Some(BigRational::zero()),
            1 => {
                let (m, c) = self.terms.iter().next().unwrap();
                m.is_one().then(|| c.clone())
            }
            _ => None,
        }
    }

    fn add_term(&mut self, m: Mono, c: BigRational) {
        if c.is_zero() {
            return;
        }
        use std::collections::btree_map::Entry;
        match self.terms.entry(m) {
            Entry::Vacant(v) => {
                v.insert(c);
            }
            Entry::Occupied(mut o) => {
                *o.get_mut() += c;
                if o.get().is_zero() {
                    o.remove();
                }
            }
        }
    }

    fn add(&self, other: &Poly, budget: &mut Budget) -> CResult<Poly> {
        budget
            .spend((self.terms.len() + other.terms.len()) as u64)
            .map_err(|_| CasFail::TooBig)?;
        let mut out = self.clone();
        for (m, c) in &other.terms {
            out.add_term(m.clone(), c.clone());
        }
        Ok(out)
    }

    fn neg(&self) -> Poly {
        Poly {
            terms: self
                .terms
                .iter()
                .map(|(m, c)| (m.clone(), -c.clone()))
                .collect(),
        }
    }

    pub fn mul(&self, other: &Poly, budget: &mut Budget) -> CResult<Poly> {
        // Cost grows with the number of term pairs and with coefficient size (big-integer
        // products), so a budget unit stays roughly the same amount of time.
        let pairs = (self.terms.len() * other.terms.len()) as u64;
        let max_bits = |p: &Poly| p.terms.values().map(bits).max().unwrap_or(0);
        let word_cost = 1 + (max_bits(self) + max_bits(other)) / 64;
        budget
            .spend(pairs * 8 * word_cost + 1)
            .map_err(|_| CasFail::TooBig)?;
        let mut out = Poly::zero();
        for (ma, ca) in &self.terms {
            for (mb, cb) in &other.terms {
                let (m, k) = mono_mul(ma, mb);
                let c = if k.is_one() { ca * cb } else { ca * cb * k };
                if bits(&c) > MAX_BITS {
                    return Err(CasFail::TooBig);
                }
                out.add_term(m, c);
            }
        }
        if out.terms.len() > MAX_TERMS {
            return Err(CasFail::TooBig);
        }
        Ok(out)
    }

    /// Inverse of a single-term polynomial (`c·√r·i^s·Πx^k`), or None.
    fn invert_monomial(&self) -> Option<Poly> {
        if self.terms.len() != 1 {
            return None;
        }
        let (m, c) = self.terms.iter().next().unwrap();
        // 1/(c √r i x^k) = (1/(c r)) √r (−i if imaginary) x^{−k}
        let mut coef = BigRational::one() / (c * BigRational::from_integer(m.rad.clone()));
        if m.imag {
            coef = -coef;
        }
        let inv = Mono {
            vars: m.vars.iter().map(|(a, k)| (a.clone(), -k)).collect(),
            rad: m.rad.clone(),
            imag: m.imag,
        };
        Some(Poly::constant(BigRational::one()).with_mono(inv, coef))
    }

    fn with_mono(self, m: Mono, c: BigRational) -> Poly {
        let mut terms = BTreeMap::new();
        terms.insert(m, c);
        Poly { terms }
    }

    /// Deterministic text form used to build keys of opaque atoms.
    pub fn key(&self) -> String {
        let mut s = String::new();
        for (m, c) in &self.terms {
            s.push_str(&format!("{c}"));
            if !m.rad.is_one() {
                s.push_str(&format!("*sqrt{}", m.rad));
            }
            if m.imag {
                s.push_str("*i");
            }
            for (a, k) in &m.vars {
                s.push_str(&format!("*{a}^{k}"));
            }
            s.push(';');
        }
        s
    }
}

fn mono_mul(a: &Mono, b: &Mono) -> (Mono, BigRational) {
    let mut k = BigRational::one();
    let rad = if a.rad.is_one() {
        b.rad.clone()
    } else if b.rad.is_one() {
        a.rad.clone()
    } else {
        let g = a.rad.gcd(&b.rad);
        k *= BigRational::from_integer(g.clone());
        (&a.rad / &g) * (&b.rad / &g)
    };
    let imag = a.imag ^ b.imag;
    if a.imag && b.imag {
        k = -k;
    }
    let mut vars: Vec<(Rc<str>, i64)> = Vec::with_capacity(a.vars.len() + b.vars.len());
    let (mut i, mut j) = (0, 0);
    while i < a.vars.len() || j < b.vars.len() {
        let take_a = j >= b.vars.len() || (i < a.vars.len() && a.vars[i].0 < b.vars[j].0);
        let take_b = i >= a.vars.len() || (j < b.vars.len() && b.vars[j].0 < a.vars[i].0);
        if take_a {
            vars.push(a.vars[i].clone());
            i += 1;
        } else if take_b {
            vars.push(b.vars[j].clone());
            j += 1;
        } else {
            let e = a.vars[i].1 + b.vars[j].1;
            if e != 0 {
                vars.push((a.vars[i].0.clone(), e));
            }
            i += 1;
            j += 1;
        }
    }
    (Mono { vars, rad, imag }, k)
}

impl RatFn {
    pub fn constant(c: BigRational) -> RatFn {
        RatFn {
            num: Poly::constant(c),
            den: Poly::constant(BigRational::one()),
        }
    }

    fn atom(key: &str) -> RatFn {
        let m = Mono {
            vars: vec![(Rc::from(key), 1)],
            rad: BigInt::one(),
            imag: false,
        };
        RatFn {
            num: Poly::zero().with_mono(m, BigRational::one()),
            den: Poly::constant(BigRational::one()),
        }
    }

    fn atom_pow(key: &str, k: i64) -> RatFn {
        let m = Mono {
            vars: vec![(Rc::from(key), k)],
            rad: BigInt::one(),
            imag: false,
        };
        RatFn {
            num: Poly::zero().with_mono(m, BigRational::one()),
            den: Poly::constant(BigRational::one()),
        }
    }

    fn sqrt_int(r: BigInt) -> RatFn {
        let m = Mono {
            vars: Vec::new(),
            rad: r,
            imag: false,
        };
        RatFn {
            num: Poly::zero().with_mono(m, BigRational::one()),
            den: Poly::constant(BigRational::one()),
        }
    }

    fn imag() -> RatFn {
        let m = Mono {
            vars: Vec::new(),
            rad: BigInt::one(),
            imag: true,
        };
        RatFn {
            num: Poly::zero().with_mono(m, BigRational::one()),
            den: Poly::constant(BigRational::one()),
        }
    }

    /// Rational value, when the function is a plain rational constant.
    pub fn as_rational(&self) -> Option<BigRational> {
        let n = self.num.as_rational()?;
        let d = self.den.as_rational()?;
        if d.is_zero() {
            None
        } else {
            Some(n / d)
        }
    }

    pub fn key(&self) -> String {
        format!("({})/({})", self.num.key(), self.den.key())
    }

    /// Moves single-term denominators into the numerator so common forms stay polynomial.
    fn tidy(self) -> RatFn {
        if self.den.terms.len() == 1 {
            let one = self
                .den
                .terms
                .iter()
                .next()
                .map(|(m, c)| m.is_one() && c.is_one())
                .unwrap_or(false);
            if one {
                return self;
            }
            if let Some(inv) = self.den.invert_monomial() {
                let mut scratch = Budget::new(u64::MAX);
                if let Ok(num) = self.num.mul(&inv, &mut scratch) {
                    return RatFn {
                        num,
                        den: Poly::constant(BigRational::one()),
                    };
                }
            }
        }
        self
    }

    fn add(&self, o: &RatFn, b: &mut Budget) -> CResult<RatFn> {
        if self.den == o.den {
            return Ok(RatFn {
                num: self.num.add(&o.num, b)?,
                den: self.den.clone(),
            });
        }
        let n = self.num.mul(&o.den, b)?.add(&o.num.mul(&self.den, b)?, b)?;
        let d = self.den.mul(&o.den, b)?;
        Ok(RatFn { num: n, den: d }.tidy())
    }

    fn neg(&self) -> RatFn {
        RatFn {
            num: self.num.neg(),
            den: self.den.clone(),
        }
    }

    fn mul(&self, o: &RatFn, b: &mut Budget) -> CResult<RatFn> {
        let n = self.num.mul(&o.num, b)?;
        let d = if o.den.as_rational().is_some_and(|c| c.is_one()) {
            self.den.clone()
        } else if self.den.as_rational().is_some_and(|c| c.is_one()) {
            o.den.clone()
        } else {
            self.den.mul(&o.den, b)?
        };
        Ok(RatFn { num: n, den: d }.tidy())
    }

    fn recip(&self) -> CResult<RatFn> {
        if self.num.is_zero() {
            return Err(CasFail::DivByZero);
        }
        Ok(RatFn {
            num: self.den.clone(),
            den: self.num.clone(),
        }
        .tidy())
    }

    fn pow_int(&self, n: i64, b: &mut Budget) -> CResult<RatFn> {
        if n == 0 {
            return Ok(RatFn::constant(BigRational::one()));
        }
        let base = if n < 0 { self.recip()? } else { self.clone() };
        let mut e = n.unsigned_abs();
        // Estimate the cost first so huge powers fail before doing any work.
        let size_bits: u64 = base
            .num
            .terms
            .values()
            .chain(base.den.terms.values())
            .map(bits)
            .max()
            .unwrap_or(1);
        let terms = (base.num.terms.len().max(base.den.terms.len())) as u64;
        if size_bits.saturating_mul(e) > MAX_BITS * 2 || (terms > 1 && e > 64) {
            return Err(CasFail::TooBig);
        }
        let mut acc = RatFn::constant(BigRational::one());
        let mut sq = base;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(&sq, b)?;
            }
            e >>= 1;
            if e > 0 {
                sq = sq.mul(&sq, b)?;
            }
        }
        Ok(acc)
    }

    /// `self - other` as a single fraction's numerator (zero iff equal).
    pub fn cross_diff(&self, o: &RatFn, b: &mut Budget) -> CResult<Poly> {
        let l = self.num.mul(&o.den, b)?;
        let r = o.num.mul(&self.den, b)?;
        l.add(&r.neg(), b)
    }
}

/// `self · k == other` for some rational k? Returns that k.
pub fn proportional(a: &Poly, b: &Poly) -> Option<BigRational> {
    let (m, ca) = a.terms.iter().next()?;
    let cb = b.terms.get(m)?;
    let k = cb / ca;
    if a.terms.len() != b.terms.len() {
        return None;
    }
    for (m, ca) in &a.terms {
        if b.terms.get(m)? != &(ca * &k) {
            return None;
        }
    }
    Some(k)
}

/// Square-free decomposition `n = s² · r` by trial division (bounded); returns (s, r).
fn square_part(n: &BigInt, budget: &mut Budget) -> CResult<(BigInt, BigInt)> {
    let mut s = BigInt::one();
    let mut r = BigInt::one();
    let mut m = n.clone();
    let mut p = BigInt::from(2u32);
    let limit = BigInt::from(20_000u32);
    while &p * &p <= m && p <= limit {
        budget.spend(1).map_err(|_| CasFail::TooBig)?;
        let mut count = 0u32;
        while (&m % &p).is_zero() {
            m /= &p;
            count += 1;
        }
        for _ in 0..count / 2 {
            s *= &p;
        }
        if count % 2 == 1 {
            r *= &p;
        }
        p += 1;
    }
    // Whatever is left is a prime or a product of large primes; a perfect square of a large
    // prime is still detected.
    let root = m.sqrt();
    if &root * &root == m && !m.is_one() {
        s *= root;
    } else {
        r *= m;
    }
    Ok((s, r))
}

impl Cas<'_> {
    pub fn new(budget: &mut Budget) -> Cas<'_> {
        Cas {
            budget,
            opaque: false,
        }
    }

    fn opaque(&mut self, key: String) -> RatFn {
        self.opaque = true;
        RatFn::atom(&key)
    }

    pub fn convert(&mut self, n: &Node) -> CResult<RatFn> {
        self.budget.spend(1).map_err(|_| CasFail::TooBig)?;
        match n {
            Node::Num { value, .. } => {
                if bits(value) > MAX_BITS {
                    return Err(CasFail::TooBig);
                }
                Ok(RatFn::constant(value.clone()))
            }
            Node::Sym(s) => Ok(RatFn::atom(&format!("v:{s}"))),
            Node::Pi => Ok(RatFn::atom("c:pi")),
            Node::E => Ok(RatFn::atom("c:e")),
            Node::I => Ok(RatFn::imag()),
            Node::Add(v) => {
                let mut acc = RatFn::constant(BigRational::zero());
                for t in v {
                    let x = self.convert(t)?;
                    acc = acc.add(&x, self.budget)?;
                }
                Ok(acc)
            }
            Node::Mul(v) => {
                let mut acc = RatFn::constant(BigRational::one());
                for t in v {
                    let x = self.convert(t)?;
                    acc = acc.mul(&x, self.budget)?;
                }
                Ok(acc)
            }
            Node::Neg(a) => Ok(self.convert(a)?.neg()),
            Node::Div(a, b) => {
                let x = self.convert(a)?;
                let y = self.convert(b)?;
                x.mul(&y.recip()?, self.budget)
            }
            Node::Percent(a) => {
                let x = self.convert(a)?;
                x.mul(
                    &RatFn::constant(BigRational::new(1.into(), 100.into())),
                    self.budget,
                )
            }
            Node::Pow(a, e) => self.pow(a, e),
            Node::Func(f, args) => self.func(*f, args, n),
            Node::Apply(name, args) => {
                let mut key = format!("f:{name}(");
                for a in args {
                    key.push_str(&self.convert(a)?.key());
                    key.push(',');
                }
                key.push(')');
                Ok(self.opaque(key))
            }
            Node::Calc(c) => {
                // Same operator, variable and bounds, and bodies equal as rational functions
                // (so `\sum_k F_{n-k} F_k` equals `\sum_k F_k F_{n-k}`): the same atom.
                let mut key = format!("calc:{:?}:{:?}[", c.op, c.var);
                for b in [&c.lower, &c.upper] {
                    match b {
                        None => key.push('_'),
                        Some(Node::Inf) => key.push_str("inf"),
                        Some(Node::Neg(x)) if **x == Node::Inf => key.push_str("-inf"),
                        Some(x) => key.push_str(&self.convert(x)?.key()),
                    }
                    key.push('|');
                }
                key.push_str(&self.convert(&c.body)?.key());
                key.push(']');
                Ok(self.opaque(key))
            }
            Node::Factorial(a) => {
                let x = self.convert(a)?;
                if let Some(k) = x
                    .as_rational()
                    .filter(|k| k.is_integer())
                    .and_then(|k| k.to_integer().to_u32())
                {
                    if k > 300 {
                        return Err(CasFail::TooBig);
                    }
                    let mut acc = BigInt::one();
                    for j in 2..=k {
                        acc *= j;
                    }
                    self.budget.spend(k as u64).map_err(|_| CasFail::TooBig)?;
                    return Ok(RatFn::constant(BigRational::from_integer(acc)));
                }
                Ok(self.opaque(format!("fact[{}]", x.key())))
            }
            _ => Err(CasFail::Unsupported),
        }
    }

    fn pow(&mut self, a: &Node, e: &Node) -> CResult<RatFn> {
        let base = self.convert(a)?;
        let mut infinite = false;
        e.visit(&mut |n| infinite |= matches!(n, Node::Inf));
        if base.as_rational().is_some_and(|b| b.is_one()) && !e.has_symbols() && !infinite {
            // 1^x = 1 for every finite x: the exponent (`2^{235423523}`) is never evaluated.
            return Ok(base);
        }
        let ex = self.convert(e)?;
        let Some(q) = ex.as_rational() else {
            // Symbolic exponent: an opaque power, with e^x and exp(x) sharing a key.
            return Ok(self.opaque(format!("pow[{}][{}]", base.key(), ex.key())));
        };
        if q.is_integer() {
            let n = q.to_integer().to_i64().ok_or(CasFail::TooBig)?;
            if n.unsigned_abs() > 100_000 {
                return Err(CasFail::TooBig);
            }
            return base.pow_int(n, self.budget);
        }
        let p = q.numer().to_i64().ok_or(CasFail::TooBig)?;
        let r = q.denom().to_u32().ok_or(CasFail::TooBig)?;
        if r > 64 || p.unsigned_abs() > 1000 {
            return Err(CasFail::TooBig);
        }
        if let Some(c) = base.as_rational() {
            if let Some(root) = self.rational_root(&c, r)? {
                return root.pow_int(p, self.budget);
            }
        }
        // Non-rational base: the r-th root is an atom; its integer powers stay exact, so
        // x^{2/3} and (x^{1/3})^2 agree. Whole powers of the base are split off (x^{3/2} =
        // x·√x), so that a power and a product of root and base share one form.
        let key = format!("root{r}[{}]", base.key());
        self.opaque = true;
        let (whole, rest) = (p.div_euclid(r as i64), p.rem_euclid(r as i64));
        let root = RatFn::atom_pow(&key, rest);
        if whole == 0 {
            return Ok(root);
        }
        base.pow_int(whole, self.budget)?.mul(&root, self.budget)
    }

    /// Exact `c^{1/r}` for rational c when it stays within our number field (square roots of
    /// integers, exact higher roots, real odd roots of negatives).
    fn rational_root(&mut self, c: &BigRational, r: u32) -> CResult<Option<RatFn>> {
        if c.is_zero() {
            return Ok(Some(RatFn::constant(BigRational::zero())));
        }
        let neg = c.is_negative();
        let a = c.abs();
        let (n, d) = (a.numer().clone(), a.denom().clone());
        if n.bits() > 256 || d.bits() > 256 {
            return Err(CasFail::TooBig);
        }
        let rn = n.nth_root(r);
        let rd = d.nth_root(r);
        if num_traits::pow(rn.clone(), r as usize) == n
            && num_traits::pow(rd.clone(), r as usize) == d
        {
            let v = RatFn::constant(BigRational::new(rn, rd));
            return Ok(Some(match (neg, r % 2) {
                (false, _) => v,
                (true, 1) => v.neg(),
                (true, _) if r == 2 => v.mul(&RatFn::imag(), self.budget)?,
                _ => return Ok(None),
            }));
        }
        if r != 2 {
            return Ok(None);
        }
        // √(n/d) = √(n·d)/d = s√t / d
        let (s, t) = square_part(&(&n * &d), self.budget)?;
        let mut v =
            RatFn::sqrt_int(t).mul(&RatFn::constant(BigRational::new(s, d)), self.budget)?;
        if neg {
            v = v.mul(&RatFn::imag(), self.budget)?;
        }
        Ok(Some(v))
    }

    fn func(&mut self, f: Func, args: &[Node], whole: &Node) -> CResult<RatFn> {
        let arity_ok = match f {
            Func::Binom | Func::Mod => args.len() == 2,
            Func::Log => (1..=2).contains(&args.len()),
            Func::Gcd | Func::Lcm | Func::Min | Func::Max => !args.is_empty(),
            _ => args.len() == 1,
        };
        if !arity_ok {
            return Err(CasFail::Unsupported);
        }
        let mut xs = Vec::with_capacity(args.len());
        for a in args {
            xs.push(self.convert(a)?);
        }
        let rats: Option<Vec<BigRational>> = xs.iter().map(|x| x.as_rational()).collect();
        let ints: Option<Vec<BigInt>> = rats.as_ref().and_then(|v| {
            v.iter()
                .map(|r| r.is_integer().then(|| r.to_integer()))
                .collect()
        });
        let from_int = |v: BigInt| Ok(RatFn::constant(BigRational::from_integer(v)));
        match f {
            Func::Gcd | Func::Lcm if rats.is_none() => self.poly_gcd_lcm(f == Func::Gcd, &xs),
            Func::Gcd | Func::Lcm => {
                // Rationals (`gcd(2.4, 3.6) = 6/5`): over a common denominator d the gcd/lcm
                // of a_i/d is gcd/lcm(a_i)/d, which is the integer one when d = 1.
                let v = rats.ok_or(CasFail::Unsupported)?;
                let d = v.iter().fold(BigInt::one(), |acc, r| acc.lcm(r.denom()));
                let scaled: Vec<BigInt> = v
                    .iter()
                    .map(|r| (r * BigRational::from_integer(d.clone())).to_integer())
                    .collect();
                let mut acc = scaled[0].abs();
                for x in &scaled[1..] {
                    acc = if f == Func::Gcd {
                        acc.gcd(x)
                    } else {
                        acc.lcm(x)
                    };
                }
                Ok(RatFn::constant(BigRational::new(acc, d)))
            }
            Func::Binom => {
                let v = ints.ok_or(CasFail::Unsupported)?;
                let n = v[0].to_i64().ok_or(CasFail::TooBig)?;
                let k = v[1].to_i64().ok_or(CasFail::TooBig)?;
                if !(0..=2000).contains(&n) {
                    return Err(CasFail::TooBig);
                }
                if k < 0 || k > n {
                    return from_int(BigInt::zero());
                }
                let mut acc = BigInt::one();
                for j in 0..k {
                    acc = acc * (n - j) / (j + 1);
                }
                self.budget.spend(k as u64).map_err(|_| CasFail::TooBig)?;
                from_int(acc)
            }
            Func::Mod => {
                let v = rats.ok_or(CasFail::Unsupported)?;
                if v[1].is_zero() {
                    return Err(CasFail::DivByZero);
                }
                let q = (&v[0] / &v[1]).floor();
                Ok(RatFn::constant(&v[0] - &v[1] * q))
            }
            Func::Floor | Func::Ceil => {
                if let Some(v) = rats {
                    let r = if f == Func::Floor {
                        v[0].floor()
                    } else {
                        v[0].ceil()
                    };
                    return Ok(RatFn::constant(r));
                }
                if args[0].has_symbols() {
                    // A step function of a variable: an atom, decided by sampling.
                    return Ok(self.opaque(format!("{f:?}[{}]", xs[0].key())));
                }
                let val =
                    numeric::eval_constant(&args[0], self.budget).ok_or(CasFail::Unsupported)?;
                if val.im.abs() > 1e-12 || !val.re.is_finite() || val.re.abs() > 1e15 {
                    return Err(CasFail::Unsupported);
                }
                let r = if f == Func::Floor {
                    val.re.floor()
                } else {
                    val.re.ceil()
                };
                if (val.re - val.re.round()).abs() < 1e-9 {
                    return Err(CasFail::Unsupported); // too close to an integer to decide in floats
                }
                from_int(BigInt::from(r as i64))
            }
            Func::Abs => {
                let x = &xs[0];
                if let Some(r) = x.as_rational() {
                    return Ok(RatFn::constant(r.abs()));
                }
                if !args[0].has_symbols() {
                    if let Some(v) = numeric::eval_constant(&args[0], self.budget) {
                        if v.im.abs() < 1e-12 && v.re.abs() > 1e-9 {
                            return Ok(if v.re < 0.0 { x.neg() } else { x.clone() });
                        }
                    }
                }
                Ok(self.opaque(format!("abs[{}]", x.key())))
            }
            Func::Min | Func::Max if args.iter().any(|a| a.has_symbols()) => {
                let mut key = format!("{f:?}[");
                for x in &xs {
                    key.push_str(&x.key());
                    key.push(',');
                }
                key.push(']');
                Ok(self.opaque(key))
            }
            Func::Min | Func::Max => {
                let mut best: Option<(f64, usize)> = None;
                for (i, a) in args.iter().enumerate() {
                    let v = numeric::eval_constant(a, self.budget).ok_or(CasFail::Unsupported)?;
                    if v.im.abs() > 1e-12 {
                        return Err(CasFail::Unsupported);
                    }
                    let better = match best {
                        None => true,
                        Some((b, _)) => {
                            if f == Func::Min {
                                v.re < b
                            } else {
                                v.re > b
                            }
                        }
                    };
                    if better {
                        best = Some((v.re, i));
                    }
                }
                Ok(xs[best.ok_or(CasFail::Unsupported)?.1].clone())
            }
            Func::Exp => {
                let e = Node::Pow(Box::new(Node::E), Box::new(args[0].clone()));
                self.convert(&e)
            }
            Func::Ln | Func::Log => {
                // log(x) is natural (SymPy); log_b(x) has the base as second argument.
                let x = &xs[0];
                if let Some(r) = x.as_rational() {
                    if r.is_one() {
                        return Ok(RatFn::constant(BigRational::zero()));
                    }
                    if xs.len() == 2 {
                        if let Some(b) = xs[1].as_rational() {
                            if let Some(k) = exact_log(&r, &b) {
                                return Ok(RatFn::constant(k));
                            }
                        }
                    }
                }
                // ln(e^k) = k
                if xs.len() == 1 {
                    if let Some((m, c)) = x.num.terms.iter().next() {
                        if x.num.terms.len() == 1
                            && c.is_one()
                            && x.den.as_rational().is_some_and(|d| d.is_one())
                            && m.rad.is_one()
                            && !m.imag
                            && m.vars.len() == 1
                            && &*m.vars[0].0 == "c:e"
                        {
                            return Ok(RatFn::constant(BigRational::from_integer(
                                m.vars[0].1.into(),
                            )));
                        }
                    }
                }
                let lx = self.opaque(format!("ln[{}]", x.key()));
                if xs.len() == 2 {
                    let lb = self.opaque(format!("ln[{}]", xs[1].key()));
                    return lx.mul(&lb.recip()?, self.budget);
                }
                Ok(lx)
            }
            _ => {
                let _ = whole;
                let mut key = format!("{f:?}[");
                for x in &xs {
                    key.push_str(&x.key());
                }
                key.push(']');
                Ok(self.opaque(key))
            }
        }
    }
}

impl Cas<'_> {
    /// gcd/lcm of polynomials in symbols, π, e and radicals, by SymPy's conventions (which the
    /// peers' suites test): symbols and radicals are independent generators, so `gcd(x, y) = 1`,
    /// `lcm(√5, √2) = √10`; integer coefficients contribute their integer gcd (`gcd(125, 50x) =
    /// 25`); with a non-integer coefficient the domain is the rationals and the result is monic
    /// (`gcd(0.4x, 8/3) = 1`, `lcm(0.4x, 8/3) = x`). A common factor beyond content and
    /// monomials is found only when the remaining parts are proportional.
    fn poly_gcd_lcm(&mut self, gcd: bool, xs: &[RatFn]) -> CResult<RatFn> {
        if xs.len() > 16 {
            return Err(CasFail::TooBig);
        }
        let mut polys = Vec::with_capacity(xs.len());
        for x in xs {
            let d = x.den.as_rational().ok_or(CasFail::Unsupported)?;
            if d.is_zero() {
                return Err(CasFail::DivByZero);
            }
            let inv = Poly::constant(BigRational::one() / d);
            polys.push(x.num.mul(&inv, self.budget)?);
        }
        let field = polys
            .iter()
            .any(|p| p.terms.values().any(|c| !c.is_integer()));
        let mut acc = polys[0].clone();
        for p in &polys[1..] {
            let g = self.poly_gcd(&acc, p, field)?;
            acc = if gcd {
                g
            } else if acc.is_zero() || p.is_zero() {
                Poly::zero()
            } else {
                // lcm = a·b / gcd; the gcd is a monomial times (possibly) a factor of `b`.
                let q = RatFn {
                    num: acc.mul(p, self.budget)?,
                    den: g,
                }
                .tidy();
                let d = q.den.as_rational().ok_or(CasFail::Unsupported)?;
                q.num
                    .mul(&Poly::constant(BigRational::one() / d), self.budget)?
            };
        }
        if field && !acc.is_zero() {
            // Monic: divide by the coefficient of the leading (last in order) term.
            let lead = acc.terms.values().next_back().cloned().unwrap();
            acc = acc.mul(&Poly::constant(BigRational::one() / lead), self.budget)?;
        }
        Ok(RatFn {
            num: acc,
            den: Poly::constant(BigRational::one()),
        })
    }

    fn poly_gcd(&mut self, a: &Poly, b: &Poly, field: bool) -> CResult<Poly> {
        if a.is_zero() {
            return Ok(b.clone());
        }
        if b.is_zero() {
            return Ok(a.clone());
        }
        let (ca, ma, pa) = self.poly_parts(a, field)?;
        let (cb, mb, pb) = self.poly_parts(b, field)?;
        let content = if field {
            BigRational::one()
        } else {
            BigRational::from_integer(ca.to_integer().gcd(&cb.to_integer()))
        };
        let vars = ma
            .vars
            .iter()
            .filter_map(|(v, k)| {
                let other = mb.vars.iter().find(|(w, _)| w == v)?.1;
                Some((v.clone(), (*k).min(other)))
            })
            .collect();
        let rad = if ma.rad == mb.rad {
            ma.rad.clone()
        } else {
            BigInt::one()
        };
        let mono = Mono {
            vars,
            rad,
            imag: false,
        };
        let mut g = Poly::zero().with_mono(mono, content);
        if proportional(&pa, &pb).is_some() {
            g = g.mul(&pa, self.budget)?;
        }
        Ok(g)
    }

    /// `p = content · monomial · primitive part`: the integer content (1 over the rationals),
    /// the monomial of the least power of each generator in every term (and a radical common to
    /// all terms), and what is left.
    fn poly_parts(&mut self, p: &Poly, field: bool) -> CResult<(BigRational, Mono, Poly)> {
        let content = if field {
            BigRational::one()
        } else {
            let g = p
                .terms
                .values()
                .fold(BigInt::zero(), |acc, c| acc.gcd(&c.to_integer()));
            BigRational::from_integer(g)
        };
        let mut terms = p.terms.keys();
        let first = terms.next().ok_or(CasFail::Unsupported)?;
        let mut vars: Vec<(Rc<str>, i64)> =
            first.vars.iter().filter(|(_, k)| *k > 0).cloned().collect();
        let mut rad = first.rad.clone();
        for m in terms {
            vars.retain_mut(|(v, k)| match m.vars.iter().find(|(w, _)| w == v) {
                Some((_, j)) if *j > 0 => {
                    *k = (*k).min(*j);
                    true
                }
                _ => false,
            });
            if m.rad != rad {
                rad = BigInt::one();
            }
        }
        let mono = Mono {
            vars,
            rad,
            imag: false,
        };
        let inv = Poly::zero()
            .with_mono(mono.clone(), content.clone())
            .invert_monomial()
            .ok_or(CasFail::Unsupported)?;
        let pp = p.mul(&inv, self.budget)?;
        Ok((content, mono, pp))
    }
}

/// `log_b(x)` when it is an integer (or the reciprocal of one): `log_2 8 = 3`, `log_8 2 = 1/3`.
fn exact_log(x: &BigRational, b: &BigRational) -> Option<BigRational> {
    if !b.is_positive() || b.is_one() || !x.is_positive() {
        return None;
    }
    let search = |target: &BigRational, base: &BigRational| -> Option<i64> {
        let mut acc = BigRational::one();
        for k in 0..=64i64 {
            if &acc == target {
                return Some(k);
            }
            acc *= base;
            if bits(&acc) > 600 {
                return None;
            }
        }
        None
    };
    if let Some(k) = search(x, b) {
        return Some(BigRational::from_integer(k.into()));
    }
    if let Some(k) = search(&(BigRational::one() / x), b) {
        return Some(BigRational::from_integer((-k).into()));
    }
    if let Some(k) = search(b, x) {
        return Some(BigRational::new(1.into(), k.into()));
    }
    None
}
