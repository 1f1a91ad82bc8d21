//! Equivalence of two parsed answers: structure first (collections, intervals, relations,
//! matrices), then scalars by the exact CAS, then numeric evaluation.

use crate::ast::{Node, RelOp, SeqKind};
use crate::budget::Budget;
use crate::cas::{self, Cas};
use crate::numeric::{self, close, POINTS};
use crate::CheckerOptions;
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, Zero};

/// Largest collection compared element by element.
const MAX_ITEMS: usize = 64;

pub struct Comparer<'a> {
    pub opts: &'a CheckerOptions,
    pub budget: Budget,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Pred,
    Gold,
}

impl<'a> Comparer<'a> {
    pub fn new(opts: &'a CheckerOptions, budget: Budget) -> Self {
        Comparer { opts, budget }
    }

    /// Is `pred` an acceptable answer for `gold`?
    pub fn answers(&mut self, pred: &Node, gold: &Node) -> bool {
        let p = prepare(pred);
        let g = prepare(gold);
        self.eq(&p, &g, 0)
    }

    fn spend(&mut self, n: u64) -> bool {
        self.budget.spend(n).is_ok()
    }

    fn eq(&mut self, p: &Node, g: &Node, depth: u32) -> bool {
        if depth > 12 || !self.spend(1) {
            return false;
        }
        if p == g {
            return true;
        }
        use Node::*;
        match (p, g) {
            (Text(a), Text(b)) => return norm_text(a) == norm_text(b),
            (Text(a), Sym(b)) | (Sym(b), Text(a)) => return norm_text(a) == norm_text(b),
            (Text(_), Rel { .. }) | (Rel { .. }, Text(_)) => {}
            (Text(_), _) | (_, Text(_)) => return false,
            _ => {}
        }
        // Single-element lists are their element.
        if let Seq(SeqKind::List, v) = p {
            if v.len() == 1 {
                return self.eq(&v[0], g, depth + 1);
            }
        }
        if let Seq(SeqKind::List, v) = g {
            if v.len() == 1 {
                return self.eq(p, &v[0], depth + 1);
            }
        }
        // Set algebra: evaluated on finite sets, else compared as written.
        if is_set_algebra(p) || is_set_algebra(g) {
            if let (Some(a), Some(b)) = (self.finite_set(p, depth), self.finite_set(g, depth)) {
                return self.unordered(&a, &b, depth);
            }
            if let (Some(a), Some(b)) = (self.intervals(p), self.intervals(g)) {
                if self.interval_sets_eq(a, b) {
                    return true;
                }
            }
            return match (p, g) {
                (Union(a), Union(b)) | (Inter(a), Inter(b)) => {
                    a.len() == b.len() && self.unordered(a, b, depth)
                }
                (Diff(a1, b1), Diff(a2, b2)) => {
                    self.eq(a1, a2, depth + 1) && self.eq(b1, b2, depth + 1)
                }
                _ => false,
            };
        }
        // Intervals and inequalities.
        if is_interval_like(p) || is_interval_like(g) {
            if let (Some(a), Some(b)) = (self.intervals(p), self.intervals(g)) {
                return self.interval_sets_eq(a, b);
            }
        }
        match (p, g) {
            (Seq(ka, a), Seq(kb, b)) => return self.seq_eq(*ka, a, *kb, b, depth),
            (Matrix(a), Matrix(b)) => {
                return a.len() == b.len()
                    && a.iter().zip(b).all(|(ra, rb)| ra.len() == rb.len())
                    && a.iter()
                        .flatten()
                        .zip(b.iter().flatten())
                        .all(|(x, y)| self.eq(x, y, depth + 1));
            }
            (Matrix(m), Seq(SeqKind::Tuple('(', ')'), v))
            | (Seq(SeqKind::Tuple('(', ')'), v), Matrix(m)) => {
                // A column (or row) vector written as a tuple.
                let flat: Vec<&Node> = m.iter().flatten().collect();
                let is_vector = m.len() == 1 || m.iter().all(|r| r.len() == 1);
                return is_vector
                    && flat.len() == v.len()
                    && flat.iter().zip(v).all(|(x, y)| self.eq(x, y, depth + 1));
            }
            (Rel { parts: pa, ops: oa }, Rel { parts: pb, ops: ob }) => {
                return self.rel_eq(pa, oa, pb, ob, depth)
            }
            (Rel { parts, ops }, _) => {
                return match eq_value(parts, ops, Side::Pred) {
                    Some(v) => self.eq(&v, g, depth + 1),
                    None => false,
                }
            }
            (_, Rel { parts, ops }) => {
                return match eq_value(parts, ops, Side::Gold) {
                    Some(v) => self.eq(p, &v, depth + 1),
                    None => false,
                }
            }
            // Equivalent forms offered together ("15 39/40, or 639/40"): every one must match.
            (Seq(SeqKind::List, v), _) if !matches!(g, Seq(..)) && v.len() <= 4 => {
                return v.iter().all(|x| self.eq(x, g, depth + 1));
            }
            (Seq(SeqKind::Set, v), _) if v.len() == 1 => return self.eq(&v[0], g, depth + 1),
            (_, Seq(SeqKind::Set, v)) if v.len() == 1 => return self.eq(p, &v[0], depth + 1),
            (Seq(..), _)
            | (_, Seq(..))
            | (Matrix(_), _)
            | (_, Matrix(_))
            | (Union(_), _)
            | (_, Union(_)) => return false,
            _ => {}
        }
        self.scalar(p, g)
    }

    fn seq_eq(&mut self, ka: SeqKind, a: &[Node], kb: SeqKind, b: &[Node], depth: u32) -> bool {
        use SeqKind::*;
        if a.len() > MAX_ITEMS || b.len() > MAX_ITEMS {
            return false;
        }
        if let (List | Set, List | Set) = (ka, kb) {
            return self.unordered(a, b, depth);
        }
        if a.len() != b.len() {
            return false;
        }
        match (ka, kb) {
            (Tuple(o1, c1), Tuple(o2, c2)) => {
                // Brackets matter for pairs (intervals); longer tuples only need the same order.
                (a.len() != 2 || (o1 == o2 && c1 == c2)) && self.ordered(a, b, depth)
            }
            // A bare list against a tuple is compared in order (policy: `1,3` ≠ `(3,1)`).
            (List, Tuple(..)) | (Tuple(..), List) => self.ordered(a, b, depth),
            (Ratio, Ratio) => self.ratio_eq(a, b, depth),
            _ => false,
        }
    }

    fn ordered(&mut self, a: &[Node], b: &[Node], depth: u32) -> bool {
        a.iter().zip(b).all(|(x, y)| self.eq(x, y, depth + 1))
    }

    /// Equality of collections by greedy matching; a repeated element counts once (`{1, 1, 2}`
    /// is `{1, 2}`).
    fn unordered(&mut self, a: &[Node], b: &[Node], depth: u32) -> bool {
        if a.len() != b.len() {
            let (a, b) = (self.dedup(a, depth), self.dedup(b, depth));
            return a.len() == b.len() && self.matching(&a, &b, depth);
        }
        self.matching(a, b, depth)
    }

    fn dedup(&mut self, v: &[Node], depth: u32) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::with_capacity(v.len());
        for x in v {
            if !out.iter().any(|y| y == x)
                && !(0..out.len()).any(|k| {
                    let y = out[k].clone();
                    self.eq(x, &y, depth + 1)
                })
            {
                out.push(x.clone());
            }
        }
        out
    }

    /// The elements of a finite set expression (`{1,2} \cup {3}`, `(0,1) \cap \{0.5\}`,
    /// `\{1,2\} \setminus \{2\}`); None when it is not finite or not evaluable.
    fn finite_set(&mut self, n: &Node, depth: u32) -> Option<Vec<Node>> {
        if depth > 8 {
            return None;
        }
        match n {
            Node::Seq(SeqKind::Set | SeqKind::List, items) => Some(items.clone()),
            Node::Union(items) => {
                let mut out = Vec::new();
                for it in items {
                    out.extend(self.finite_set(it, depth + 1)?);
                }
                Some(out)
            }
            Node::Inter(items) => {
                let k = items
                    .iter()
                    .position(|it| !matches!(it, Node::Seq(SeqKind::Tuple(..), _)))?;
                let mut keep = self.finite_set(&items[k], depth + 1)?;
                for (j, it) in items.iter().enumerate() {
                    if j == k {
                        continue;
                    }
                    if let Some(other) = self.finite_set(it, depth + 1) {
                        let mut kept = Vec::new();
                        for x in keep {
                            if other.iter().any(|y| self.eq(&x, y, depth + 1)) {
                                kept.push(x);
                            }
                        }
                        keep = kept;
                    } else {
                        let ivs = self.intervals(it)?;
                        let mut kept = Vec::new();
                        for x in keep {
                            let v = numeric::eval_constant(&x, &mut self.budget)?;
                            if v.im.abs() < 1e-12 && ivs.iter().any(|iv| iv.contains(v.re)) {
                                kept.push(x);
                            }
                        }
                        keep = kept;
                    }
                }
                Some(keep)
            }
            Node::Diff(a, b) => {
                let a = self.finite_set(a, depth + 1)?;
                let b = self.finite_set(b, depth + 1)?;
                let mut kept = Vec::new();
                for x in a {
                    if !b.iter().any(|y| self.eq(&x, y, depth + 1)) {
                        kept.push(x);
                    }
                }
                Some(kept)
            }
            other if is_scalar(other) => Some(vec![other.clone()]),
            _ => None,
        }
    }

    /// Multiset equality by greedy matching.
    fn matching(&mut self, a: &[Node], b: &[Node], depth: u32) -> bool {
        let mut used = vec![false; b.len()];
        'outer: for x in a {
            for (j, y) in b.iter().enumerate() {
                if !used[j] && self.eq(x, y, depth + 1) {
                    used[j] = true;
                    continue 'outer;
                }
            }
            return false;
        }
        true
    }

    /// `a:b` equals `c:d` when proportional; a zero component requires component equality.
    fn ratio_eq(&mut self, a: &[Node], b: &[Node], depth: u32) -> bool {
        if self.ordered(a, b, depth) {
            return true;
        }
        if a.len() != 2 {
            return false;
        }
        let zero = |s: &mut Self, n: &Node| s.scalar(n, &Node::int(0));
        if zero(self, &a[0]) || zero(self, &a[1]) || zero(self, &b[0]) || zero(self, &b[1]) {
            return false;
        }
        let l = Node::Mul(vec![a[0].clone(), b[1].clone()]);
        let r = Node::Mul(vec![a[1].clone(), b[0].clone()]);
        self.scalar(&l, &r)
    }

    fn rel_eq(&mut self, pa: &[Node], oa: &[RelOp], pb: &[Node], ob: &[RelOp], depth: u32) -> bool {
        let eqish = |ops: &[RelOp]| ops.iter().all(|o| matches!(o, RelOp::Eq | RelOp::Approx));
        if eqish(oa) && eqish(ob) {
            let (ca, _) = cut_approx(pa, oa);
            let (cb, _) = cut_approx(pb, ob);
            if ca.len() == 2 && cb.len() == 2 {
                if is_name_like(&ca[0])
                    && is_name_like(&cb[0])
                    && self.eq(&ca[1], &cb[1], depth + 1)
                {
                    return true;
                }
                if self.equation_equiv(&ca, &cb) {
                    return true;
                }
                return self.eq(&ca[0], &cb[0], depth + 1) && self.eq(&ca[1], &cb[1], depth + 1);
            }
            return match (eq_value(pa, oa, Side::Pred), eq_value(pb, ob, Side::Gold)) {
                (Some(x), Some(y)) => self.eq(&x, &y, depth + 1),
                _ => false,
            };
        }
        // Inequalities and `≠`: compare the normalised constraints `d < 0`, `d ≤ 0`, `d ≠ 0`.
        let ca = constraints(pa, oa);
        let cb = constraints(pb, ob);
        let (Some(ca), Some(cb)) = (ca, cb) else {
            return false;
        };
        if ca.len() != cb.len() {
            return false;
        }
        let mut used = vec![false; cb.len()];
        'outer: for (da, opa) in &ca {
            for (j, (db, opb)) in cb.iter().enumerate() {
                if !used[j]
                    && opa == opb
                    && self.proportional(da, db, matches!(opa, RelOp::Lt | RelOp::Le))
                {
                    used[j] = true;
                    continue 'outer;
                }
            }
            return false;
        }
        true
    }

    /// `L1 = R1` and `L2 = R2` describe the same equation: `L1-R1 = k (L2-R2)`, k ≠ 0.
    fn equation_equiv(&mut self, a: &[Node], b: &[Node]) -> bool {
        let da = Node::Add(vec![a[0].clone(), Node::Neg(Box::new(a[1].clone()))]);
        let db = Node::Add(vec![b[0].clone(), Node::Neg(Box::new(b[1].clone()))]);
        if !da.has_symbols() && !db.has_symbols() {
            return false; // numeric identities like `1 = 1` are not answers
        }
        self.proportional(&da, &db, false)
    }

    /// Is `b = k·a` for a constant k ≠ 0 (k > 0 when `positive`)?
    fn proportional(&mut self, a: &Node, b: &Node, positive: bool) -> bool {
        let mut cas = Cas::new(&mut self.budget);
        let ra = cas.convert(a);
        let rb = cas.convert(b);
        let opaque = cas.opaque;
        if let (Ok(ra), Ok(rb)) = (&ra, &rb) {
            let a_poly = ra.num.clone();
            let b_poly = rb.num.clone();
            // d_b / d_a = (n_b d_a) / (n_a d_b)
            let x = cross(&a_poly, &rb.den, &mut self.budget);
            let y = cross(&b_poly, &ra.den, &mut self.budget);
            if let (Some(x), Some(y)) = (x, y) {
                if x.is_zero() || y.is_zero() {
                    return x.is_zero() && y.is_zero();
                }
                if let Some(k) = cas::proportional(&x, &y) {
                    return !positive || k.is_positive();
                }
                if !opaque {
                    return false;
                }
            }
        }
        // Numeric: the ratio must be the same nonzero constant at every sample point.
        let mut ratio: Option<num_complex::Complex64> = None;
        let mut agreeing = 0;
        for k in 0..POINTS {
            let (Some(va), Some(vb)) = (
                numeric::eval(a, k, &mut self.budget),
                numeric::eval(b, k, &mut self.budget),
            ) else {
                continue;
            };
            if va.norm() < 1e-12 || vb.norm() < 1e-12 {
                if va.norm() < 1e-12 && vb.norm() < 1e-12 {
                    continue;
                }
                return false;
            }
            let r = vb / va;
            match ratio {
                None => ratio = Some(r),
                Some(r0) if close(r0, r, self.opts.tolerance.max(1e-9)) => {}
                Some(_) => return false,
            }
            agreeing += 1;
        }
        match ratio {
            Some(r) if agreeing >= 3 => {
                !positive || (r.re > 0.0 && r.im.abs() < 1e-9 * r.re.abs().max(1.0))
            }
            _ => false,
        }
    }

    /// Scalars, with the percent policy and unit stripping.
    fn scalar(&mut self, p: &Node, g: &Node) -> bool {
        let hundred = || Box::new(Node::int(100));
        match (p, g) {
            (Node::Percent(x), Node::Percent(y)) => return self.expr(x, y),
            (Node::Percent(x), _) => {
                return self.expr(&Node::Div(x.clone(), hundred()), g) || self.expr(x, g);
            }
            (_, Node::Percent(y)) => {
                return self.expr(p, &Node::Div(y.clone(), hundred())) || self.expr(p, y);
            }
            _ => {}
        }
        if self.expr(p, g) {
            return true;
        }
        let (ps, gs) = (strip_units(p), strip_units(g));
        match (ps, gs) {
            (None, None) => false,
            (a, b) => {
                let a = a.unwrap_or_else(|| p.clone());
                let b = b.unwrap_or_else(|| g.clone());
                if a.has_symbols() != b.has_symbols() && (a.has_symbols() || b.has_symbols()) {
                    return false;
                }
                self.expr(&a, &b)
            }
        }
    }

    /// Scalar expressions: exact CAS, then tolerance/rounding for constants, then numeric
    /// sampling for the rest.
    pub fn expr(&mut self, p: &Node, g: &Node) -> bool {
        if p == g {
            return true;
        }
        if !is_scalar(p) || !is_scalar(g) {
            return false;
        }
        let mut cas = Cas::new(&mut self.budget);
        let rp = cas.convert(p);
        let rg = cas.convert(g);
        let opaque = cas.opaque;
        let constant = !p.has_symbols() && !g.has_symbols();
        if let (Ok(a), Ok(b)) = (&rp, &rg) {
            match a.cross_diff(b, &mut self.budget) {
                Ok(d) if d.is_zero() => return true,
                Ok(_) if !opaque && !constant => return false,
                _ => {}
            }
            if constant {
                if let (Some(x), Some(y)) = (a.as_rational(), b.as_rational()) {
                    return self.rational_close(p, g, &x, &y);
                }
            }
        }
        if constant {
            return self.constants_close(p, g);
        }
        // Free symbols and opaque atoms: sample.
        let mut agreeing = 0;
        let points = if numeric::has_step_function(p) || numeric::has_step_function(g) {
            POINTS + numeric::WIDE_POINTS
        } else {
            POINTS
        };
        for k in 0..points {
            let va = numeric::eval(p, k, &mut self.budget);
            let vb = numeric::eval(g, k, &mut self.budget);
            match (va, vb) {
                (Some(x), Some(y)) => {
                    if !close(x, y, self.opts.tolerance) {
                        return false;
                    }
                    agreeing += 1;
                }
                (None, None) => {}
                _ => return false,
            }
        }
        agreeing >= 3
    }

    /// Exact rationals: tolerance, `precision` rounding, and the rounded-decimal policy.
    fn rational_close(&mut self, p: &Node, g: &Node, x: &BigRational, y: &BigRational) -> bool {
        let diff = (x - y).abs();
        let scale = x.abs().max(y.abs());
        // Two integers are equal or not: 198719871989 is not 198719871987 within a tolerance.
        let integers = x.is_integer() && y.is_integer();
        if let Some(tol) = BigRational::from_float(self.opts.tolerance).filter(|_| !integers) {
            if diff <= &scale * tol {
                return true;
            }
        }
        if let Some(n) = self.opts.precision {
            let ten = BigRational::from_integer(num_traits::pow(BigInt::from(10), n as usize));
            let round = |v: &BigRational| (v * &ten).round();
            return round(x) == round(y);
        }
        let half_ulp = |decimals: u32| {
            BigRational::new(
                BigInt::from(1),
                BigInt::from(2) * num_traits::pow(BigInt::from(10), decimals as usize),
            )
        };
        if let Some((decimals, sig)) = decimal_literal(p) {
            if sig >= self.opts.rounded_min_sig_digits && diff <= half_ulp(decimals) {
                return true;
            }
        }
        if let Some(decimals) = gold_rounding(p, g) {
            return diff <= half_ulp(decimals);
        }
        false
    }

    /// Constants containing π, e, roots or functions, compared in floating point.
    fn constants_close(&mut self, p: &Node, g: &Node) -> bool {
        let (Some(x), Some(y)) = (
            numeric::eval_constant(p, &mut self.budget),
            numeric::eval_constant(g, &mut self.budget),
        ) else {
            return false;
        };
        if close(x, y, self.opts.tolerance) {
            return true;
        }
        if x.im.abs() > 1e-12 || y.im.abs() > 1e-12 {
            return false;
        }
        if let Some(n) = self.opts.precision {
            let f = 10f64.powi(n as i32);
            return (x.re * f).round() == (y.re * f).round();
        }
        if let Some((decimals, sig)) = decimal_literal(p) {
            let half_ulp = 0.5 * 10f64.powi(-(decimals as i32));
            if sig >= self.opts.rounded_min_sig_digits
                && (x.re - y.re).abs() <= half_ulp * (1.0 + 1e-9)
            {
                return true;
            }
        }
        if let Some(decimals) = gold_rounding(p, g) {
            let half_ulp = 0.5 * 10f64.powi(-(decimals as i32));
            return (x.re - y.re).abs() <= half_ulp * (1.0 + 1e-9);
        }
        false
    }

    // ----- intervals -----

    fn intervals(&mut self, n: &Node) -> Option<Vec<Interval>> {
        match n {
            Node::Seq(SeqKind::Tuple(o, c), v) if v.len() == 2 => {
                let lo = self.bound(&v[0], *o == '[')?;
                let hi = self.bound(&v[1], *c == ']')?;
                // `(3,2]` is no interval (a point `(3,2)` with a wrong bracket), not the empty set.
                if lo.value > hi.value {
                    return None;
                }
                Some(vec![Interval { lo, hi }])
            }
            Node::Union(items) => {
                let mut out = Vec::new();
                for it in items {
                    out.extend(self.intervals(it)?);
                }
                Some(out)
            }
            Node::Rel { parts, ops } if ops.len() == 1 && ops[0] == RelOp::In => {
                self.intervals(&parts[1])
            }
            Node::Rel { parts, ops } => self
                .solve_inequalities(parts, ops)
                .or_else(|| self.range_of_expression(parts, ops)),
            Node::Seq(SeqKind::Set, items) if items.iter().all(|i| !i.has_symbols()) => {
                let mut out = Vec::new();
                for it in items {
                    let lo = self.bound(it, true)?;
                    out.push(Interval { hi: lo.clone(), lo });
                }
                Some(out)
            }
            Node::Seq(SeqKind::List, items)
                if items.iter().all(|i| matches!(i, Node::Rel { .. })) =>
            {
                let mut out = Vec::new();
                for it in items {
                    out.extend(self.intervals(it)?);
                }
                Some(out)
            }
            _ => None,
        }
    }

    /// `a < f(x) < b` (or with `≤`, either direction) with constant ends: the interval of values
    /// of the middle expression, whatever it is.
    fn range_of_expression(&mut self, parts: &[Node], ops: &[RelOp]) -> Option<Vec<Interval>> {
        if parts.len() != 3 || parts[0].has_symbols() || parts[2].has_symbols() {
            return None;
        }
        let up = |o: &RelOp| matches!(o, RelOp::Lt | RelOp::Le);
        let down = |o: &RelOp| matches!(o, RelOp::Gt | RelOp::Ge);
        let closed = |o: &RelOp| matches!(o, RelOp::Le | RelOp::Ge);
        let (lo, hi) = if ops.iter().all(up) {
            (
                self.bound(&parts[0], closed(&ops[0]))?,
                self.bound(&parts[2], closed(&ops[1]))?,
            )
        } else if ops.iter().all(down) {
            (
                self.bound(&parts[2], closed(&ops[1]))?,
                self.bound(&parts[0], closed(&ops[0]))?,
            )
        } else {
            return None;
        };
        Some(vec![Interval { lo, hi }])
    }

    fn bound(&mut self, n: &Node, closed: bool) -> Option<Bound> {
        match n {
            Node::Inf => Some(Bound {
                node: n.clone(),
                value: f64::INFINITY,
                closed: false,
            }),
            Node::Neg(a) if **a == Node::Inf => Some(Bound {
                node: n.clone(),
                value: f64::NEG_INFINITY,
                closed: false,
            }),
            _ => {
                if n.has_symbols() {
                    return None;
                }
                let v = numeric::eval_constant(n, &mut self.budget)?;
                (v.im.abs() < 1e-12).then(|| Bound {
                    node: n.clone(),
                    value: v.re,
                    closed,
                })
            }
        }
    }

    /// Solution set of a chain of linear inequalities in one variable (or in `|x|`).
    fn solve_inequalities(&mut self, parts: &[Node], ops: &[RelOp]) -> Option<Vec<Interval>> {
        if ops
            .iter()
            .any(|o| !matches!(o, RelOp::Lt | RelOp::Le | RelOp::Gt | RelOp::Ge))
        {
            return None;
        }
        let mut names = Vec::new();
        for p in parts {
            p.visit(&mut |n| {
                if let Node::Sym(s) = n {
                    if !names.contains(s) {
                        names.push(s.clone());
                    }
                }
                if let Node::Apply(..) = n {
                    names.push(String::new());
                    names.push(String::from("\u{0}"));
                }
            });
        }
        if names.len() != 1 {
            return None;
        }
        let var = names.pop().unwrap();
        // |x| handled as a variable t ≥ 0.
        let abs_name = format!("|{var}|");
        let mut uses_abs = false;
        let subst: Vec<Node> = parts
            .iter()
            .map(|p| replace_abs(p, &var, &abs_name, &mut uses_abs))
            .collect();
        let t = if uses_abs {
            let mut bare = false;
            for p in &subst {
                p.visit(&mut |n| {
                    if matches!(n, Node::Sym(s) if *s == var) {
                        bare = true;
                    }
                });
            }
            if bare {
                return None;
            }
            abs_name.clone()
        } else {
            var.clone()
        };
        let mut lo = Bound {
            node: Node::Neg(Box::new(Node::Inf)),
            value: f64::NEG_INFINITY,
            closed: false,
        };
        let mut hi = Bound {
            node: Node::Inf,
            value: f64::INFINITY,
            closed: false,
        };
        for (k, op) in ops.iter().enumerate() {
            let d = Node::Add(vec![
                subst[k].clone(),
                Node::Neg(Box::new(subst[k + 1].clone())),
            ]);
            let mentions = {
                let mut m = false;
                d.visit(&mut |n| {
                    if matches!(n, Node::Sym(s) if *s == t) {
                        m = true;
                    }
                });
                m
            };
            if !mentions {
                continue;
            }
            // d(t) = a t + b with rational a ≠ 0 and constant b.
            let d0 = substitute(&d, &t, &Node::int(0));
            let d1 = substitute(&d, &t, &Node::int(1));
            let d2 = substitute(&d, &t, &Node::int(2));
            let mut cas = Cas::new(&mut self.budget);
            let a = cas
                .convert(&Node::Add(vec![
                    d1.clone(),
                    Node::Neg(Box::new(d0.clone())),
                ]))
                .ok()?
                .as_rational()?;
            let a2 = cas
                .convert(&Node::Add(vec![d2, Node::Neg(Box::new(d1))]))
                .ok()?
                .as_rational()?;
            if a.is_zero() || a != a2 {
                return None;
            }
            // Check linearity exactly: d - (a t + b) == 0.
            let lin = Node::Add(vec![
                Node::Mul(vec![Node::rat(a.clone()), Node::Sym(t.clone())]),
                d0.clone(),
            ]);
            let rd = cas.convert(&d).ok()?;
            let rl = cas.convert(&lin).ok()?;
            if cas.opaque || !rd.cross_diff(&rl, &mut self.budget).ok()?.is_zero() {
                return None;
            }
            let endpoint = Node::Neg(Box::new(Node::Div(
                Box::new(d0),
                Box::new(Node::rat(a.clone())),
            )));
            let value = numeric::eval_constant(&endpoint, &mut self.budget)?;
            if value.im.abs() > 1e-12 {
                return None;
            }
            // d op 0 with d = a(t - e): for a > 0, `<`/`≤` bound t from above.
            let upper = matches!(op, RelOp::Lt | RelOp::Le) == a.is_positive();
            let closed = matches!(op, RelOp::Le | RelOp::Ge);
            let b = Bound {
                node: endpoint,
                value: value.re,
                closed,
            };
            if upper {
                if b.value < hi.value || (b.value == hi.value && !b.closed) {
                    hi = b;
                }
            } else if b.value > lo.value || (b.value == lo.value && !b.closed) {
                lo = b;
            }
        }
        if lo.value > hi.value || (lo.value == hi.value && !(lo.closed && hi.closed)) {
            return Some(vec![]);
        }
        if !uses_abs {
            return Some(vec![Interval { lo, hi }]);
        }
        // |x| ∈ [lo, hi] with |x| ≥ 0.
        if hi.value < 0.0 || (hi.value == 0.0 && !hi.closed) {
            return Some(vec![]);
        }
        let neg = |b: &Bound| Bound {
            node: Node::Neg(Box::new(b.node.clone())),
            value: -b.value,
            closed: b.closed,
        };
        if lo.value < 0.0 || (lo.value == 0.0 && lo.closed) {
            return Some(vec![Interval { lo: neg(&hi), hi }]);
        }
        Some(vec![
            Interval {
                lo: neg(&hi),
                hi: neg(&lo),
            },
            Interval { lo, hi },
        ])
    }

    fn interval_sets_eq(&mut self, a: Vec<Interval>, b: Vec<Interval>) -> bool {
        if a.len() > MAX_ITEMS || b.len() > MAX_ITEMS {
            return false;
        }
        let (a, b) = (merge_intervals(a), merge_intervals(b));
        if a.len() != b.len() {
            return false;
        }
        for (x, y) in a.iter().zip(&b) {
            if !self.bound_eq(&x.lo, &y.lo) || !self.bound_eq(&x.hi, &y.hi) {
                return false;
            }
        }
        true
    }

    fn bound_eq(&mut self, x: &Bound, y: &Bound) -> bool {
        if x.value.is_infinite() || y.value.is_infinite() {
            return x.value == y.value;
        }
        x.closed == y.closed && self.scalar(&x.node, &y.node)
    }
}

/// Sorts a union and merges overlapping or touching pieces (`[0,1] ∪ (1,2]` = `[0,2]`), so
/// equal sets written differently compare equal. Empty pieces are dropped.
fn merge_intervals(mut v: Vec<Interval>) -> Vec<Interval> {
    let key = |i: &Interval| (i.lo.value, i.hi.value);
    v.retain(|i| {
        i.lo.value < i.hi.value || (i.lo.value == i.hi.value && i.lo.closed && i.hi.closed)
    });
    v.sort_by(|x, y| {
        key(x)
            .partial_cmp(&key(y))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for iv in v {
        if let Some(last) = out.last_mut() {
            let touches = iv.lo.value < last.hi.value
                || (iv.lo.value == last.hi.value && (iv.lo.closed || last.hi.closed));
            if touches {
                if iv.hi.value > last.hi.value || (iv.hi.value == last.hi.value && iv.hi.closed) {
                    last.hi = iv.hi;
                }
                continue;
            }
        }
        out.push(iv);
    }
    out
}

#[derive(Clone, Debug)]
struct Bound {
    node: Node,
    value: f64,
    closed: bool,
}

#[derive(Clone, Debug)]
struct Interval {
    lo: Bound,
    hi: Bound,
}

impl Interval {
    fn contains(&self, v: f64) -> bool {
        let above = v > self.lo.value || (v == self.lo.value && self.lo.closed);
        let below = v < self.hi.value || (v == self.hi.value && self.hi.closed);
        above && below
    }
}

/// `\cap`, `\setminus`, or a union involving a set of elements.
fn is_set_algebra(n: &Node) -> bool {
    match n {
        Node::Inter(_) | Node::Diff(..) => true,
        Node::Union(items) => items
            .iter()
            .any(|i| matches!(i, Node::Seq(SeqKind::Set, _))),
        _ => false,
    }
}

fn cross(p: &cas::Poly, den: &cas::Poly, budget: &mut Budget) -> Option<cas::Poly> {
    p.mul(den, budget).ok()
}

fn is_interval_like(n: &Node) -> bool {
    match n {
        Node::Seq(SeqKind::Tuple(o, c), v) => {
            v.len() == 2
                && (*o != '('
                    || *c != ')'
                    || v.iter().any(|x| {
                        matches!(x, Node::Inf) || matches!(x, Node::Neg(a) if **a == Node::Inf)
                    }))
        }
        Node::Union(_) => true,
        Node::Rel { ops, .. } => ops
            .iter()
            .any(|o| matches!(o, RelOp::Lt | RelOp::Le | RelOp::Gt | RelOp::Ge | RelOp::In)),
        _ => false,
    }
}

fn is_scalar(n: &Node) -> bool {
    !matches!(
        n,
        Node::Seq(..)
            | Node::Union(_)
            | Node::Inter(_)
            | Node::Diff(..)
            | Node::Matrix(_)
            | Node::Rel { .. }
            | Node::Text(_)
            | Node::Inf
    )
}

/// Answer-preparation: `x ∈ S` → S, matrix products folded, `±` expanded into alternatives.
fn prepare(n: &Node) -> Node {
    let n = match n {
        Node::Rel { parts, ops } if ops.len() == 1 && ops[0] == RelOp::In => parts[1].clone(),
        other => other.clone(),
    };
    let n = fold_matrix_product(&n).unwrap_or(n);
    expand_pm(&n)
}

fn expand_pm(n: &Node) -> Node {
    match n {
        Node::Seq(k @ (SeqKind::List | SeqKind::Set), items) => {
            let mut out = Vec::new();
            for it in items {
                if it.has_pm() && out.len() < MAX_ITEMS {
                    out.push(it.resolve_pm(true));
                    out.push(it.resolve_pm(false));
                } else {
                    out.push(it.clone());
                }
            }
            Node::Seq(*k, out)
        }
        Node::Seq(..) | Node::Matrix(_) | Node::Union(_) => n.clone(),
        other if other.has_pm() => Node::Seq(
            SeqKind::List,
            vec![other.resolve_pm(true), other.resolve_pm(false)],
        ),
        other => other.clone(),
    }
}

/// Arithmetic on matrices written out (`\theta A - B`, `A + B`, `A B`) becomes the result
/// matrix, entries left as expressions for the comparison.
fn fold_matrix_product(n: &Node) -> Option<Node> {
    if !matches!(n, Node::Mul(_) | Node::Add(_) | Node::Neg(_)) {
        return None;
    }
    let mut has_matrix = false;
    n.visit(&mut |x| has_matrix |= matches!(x, Node::Matrix(_)));
    if !has_matrix {
        return None;
    }
    matrix_value(n, 0).map(Node::Matrix)
}

type Rows = Vec<Vec<Node>>;

/// Entry count above which matrix arithmetic is not expanded.
const MAX_MATRIX_WORK: usize = 4096;

/// The value of a matrix expression: None when it is not one (a scalar) or is ill-formed.
fn matrix_value(n: &Node, depth: u32) -> Option<Rows> {
    if depth > 16 {
        return None;
    }
    match n {
        Node::Matrix(m) => Some(m.clone()),
        Node::Neg(a) => Some(map_entries(matrix_value(a, depth + 1)?, |c| {
            Node::Neg(Box::new(c))
        })),
        Node::Add(terms) => {
            let mut acc: Option<Rows> = None;
            for t in terms {
                let m = matrix_value(t, depth + 1)?;
                acc = Some(match acc {
                    None => m,
                    Some(a) => {
                        if a.len() != m.len() || a[0].len() != m[0].len() {
                            return None;
                        }
                        a.into_iter()
                            .zip(m)
                            .map(|(ra, rm)| {
                                ra.into_iter()
                                    .zip(rm)
                                    .map(|(x, y)| Node::Add(vec![x, y]))
                                    .collect()
                            })
                            .collect()
                    }
                });
            }
            acc
        }
        Node::Mul(factors) => {
            let mut acc: Option<Rows> = None;
            let mut scalars = Vec::new();
            for f in factors {
                let mut inner = false;
                f.visit(&mut |x| inner |= matches!(x, Node::Matrix(_)));
                if !inner {
                    if matches!(
                        f,
                        Node::Seq(..) | Node::Rel { .. } | Node::Union(_) | Node::Text(_)
                    ) {
                        return None;
                    }
                    scalars.push(f.clone());
                    continue;
                }
                let m = matrix_value(f, depth + 1)?;
                acc = Some(match acc {
                    None => m,
                    Some(a) => {
                        if a[0].len() != m.len() || a.len() * m[0].len() * m.len() > MAX_MATRIX_WORK
                        {
                            return None;
                        }
                        (0..a.len())
                            .map(|i| {
                                (0..m[0].len())
                                    .map(|j| {
                                        Node::Add(
                                            (0..m.len())
                                                .map(|k| {
                                                    Node::Mul(vec![
                                                        a[i][k].clone(),
                                                        m[k][j].clone(),
                                                    ])
                                                })
                                                .collect(),
                                        )
                                    })
                                    .collect()
                            })
                            .collect()
                    }
                });
            }
            let m = acc?;
            Some(if scalars.is_empty() {
                m
            } else {
                map_entries(m, |c| {
                    Node::Mul(scalars.iter().cloned().chain([c]).collect())
                })
            })
        }
        _ => None,
    }
}

fn map_entries(m: Rows, f: impl Fn(Node) -> Node) -> Rows {
    m.into_iter()
        .map(|row| row.into_iter().map(&f).collect())
        .collect()
}

/// Cuts an `=`-chain at its first `\approx` (the value before it is the answer).
fn cut_approx(parts: &[Node], ops: &[RelOp]) -> (Vec<Node>, bool) {
    match ops.iter().position(|o| *o == RelOp::Approx) {
        // `x \approx 11`: the name is not a value; the rounding after it is all there is.
        Some(0) if is_name_like(&parts[0]) && parts.len() >= 2 => (parts[..2].to_vec(), true),
        Some(k) => (parts[..=k].to_vec(), true),
        None => (parts.to_vec(), false),
    }
}

/// The value an `=`-chain states, if any: the last member of a computation chain `a = b = c`;
/// the right side of an assignment `x = 5` (a name on the left); on the prediction side also
/// the right side of `numeric expression = value`.
fn eq_value(parts: &[Node], ops: &[RelOp], side: Side) -> Option<Node> {
    if ops.iter().any(|o| !matches!(o, RelOp::Eq | RelOp::Approx)) {
        return None;
    }
    let (parts, _) = cut_approx(parts, ops);
    match parts.len() {
        1 => Some(parts[0].clone()),
        2 => {
            if is_name_like(&parts[0]) || (side == Side::Pred && !parts[0].has_symbols()) {
                Some(parts[1].clone())
            } else {
                None
            }
        }
        _ => parts.last().cloned(),
    }
}

/// A left-hand side that names the answer: `x`, `a_3`, `f(x)`, `(p,q)`, `A:B`, `AB`.
fn is_name_like(n: &Node) -> bool {
    match n {
        Node::Sym(_) | Node::Apply(..) => true,
        Node::Mul(v) => v
            .iter()
            .all(|x| matches!(x, Node::Sym(_) | Node::E | Node::I)),
        Node::Seq(SeqKind::Tuple(..) | SeqKind::Ratio, v) => v.iter().all(is_name_like),
        // A named quantity: `|AB|`, `\frac{NO}{BO}`, `\angle ABC` read as a product.
        Node::Func(crate::ast::Func::Abs, v) => v.len() == 1 && is_name_like(&v[0]),
        Node::Div(a, b) => is_name_like(a) && is_name_like(b),
        // Two or three capitals are a segment or a point name (`NO`), not prose.
        Node::Text(t) => (2..=3).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_uppercase()),
        _ => false,
    }
}

/// Inequality chains as `(d, op)` with `d op 0`, op ∈ {<, ≤, =, ≠}.
fn constraints(parts: &[Node], ops: &[RelOp]) -> Option<Vec<(Node, RelOp)>> {
    let mut out = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        let (l, r) = (&parts[k], &parts[k + 1]);
        let diff = |a: &Node, b: &Node| Node::Add(vec![a.clone(), Node::Neg(Box::new(b.clone()))]);
        out.push(match op {
            RelOp::Lt | RelOp::Le | RelOp::Eq | RelOp::Ne => (diff(l, r), *op),
            RelOp::Gt => (diff(r, l), RelOp::Lt),
            RelOp::Ge => (diff(r, l), RelOp::Le),
            _ => return None,
        });
    }
    Some(out)
}

fn replace_abs(n: &Node, var: &str, name: &str, used: &mut bool) -> Node {
    match n {
        Node::Func(crate::ast::Func::Abs, args)
            if args.len() == 1 && matches!(&args[0], Node::Sym(s) if s == var) =>
        {
            *used = true;
            Node::Sym(name.to_string())
        }
        _ => map_children(n, &mut |c| replace_abs(c, var, name, used)),
    }
}

fn substitute(n: &Node, var: &str, value: &Node) -> Node {
    match n {
        Node::Sym(s) if s == var => value.clone(),
        _ => map_children(n, &mut |c| substitute(c, var, value)),
    }
}

fn map_children(n: &Node, f: &mut dyn FnMut(&Node) -> Node) -> Node {
    match n {
        Node::Add(v) => Node::Add(v.iter().map(&mut *f).collect()),
        Node::Mul(v) => Node::Mul(v.iter().map(&mut *f).collect()),
        Node::Func(k, v) => Node::Func(*k, v.iter().map(&mut *f).collect()),
        Node::Apply(s, v) => Node::Apply(s.clone(), v.iter().map(&mut *f).collect()),
        Node::Neg(a) => Node::Neg(Box::new(f(a))),
        Node::Factorial(a) => Node::Factorial(Box::new(f(a))),
        Node::Percent(a) => Node::Percent(Box::new(f(a))),
        Node::Div(a, b) => Node::Div(Box::new(f(a)), Box::new(f(b))),
        Node::Pow(a, b) => Node::Pow(Box::new(f(a)), Box::new(f(b))),
        other => other.clone(),
    }
}

/// Drops unit words and unit symbols from a product: `5.4 \text{cents}` → 5.4, `1000.99 m^2` →
/// 1000.99. Returns None when nothing was dropped.
fn strip_units(n: &Node) -> Option<Node> {
    const UNIT_SYMBOLS: &[&str] = &["m", "g", "s", "cm", "km", "mm", "kg"];
    let is_unit = |f: &Node| match f {
        Node::Text(_) => true,
        Node::Pow(b, _) => {
            matches!(&**b, Node::Text(_))
                || matches!(&**b, Node::Sym(s) if UNIT_SYMBOLS.contains(&s.as_str()))
        }
        Node::Sym(s) => UNIT_SYMBOLS.contains(&s.as_str()),
        _ => false,
    };
    match n {
        Node::Mul(v) => {
            // Units trail the quantity: `5 cm`, not `cm 5`.
            let first_unit = v.iter().position(is_unit)?;
            if first_unit == 0 || !v[first_unit..].iter().all(is_unit) {
                return None;
            }
            let kept: Vec<Node> = v[..first_unit].to_vec();
            if kept
                .iter()
                .any(|k| k.has_symbols() || matches!(k, Node::Text(_)))
            {
                return None;
            }
            Some(if kept.len() == 1 {
                kept.into_iter().next().unwrap()
            } else {
                Node::Mul(kept)
            })
        }
        Node::Neg(a) => strip_units(a).map(|x| Node::Neg(Box::new(x))),
        _ => None,
    }
}

/// A gold written as a rounded decimal (`0.29`, at least 2 significant digits) against a
/// prediction written with at least two more decimals (`0.290243531`): the decimals the gold was
/// rounded to. A prediction about as coarse as the gold (`0.28`, `0.291`) is a different number,
/// and an exact value (`\frac{100}{3}` for `33.3`) is not accepted either: the labelled dev cases
/// and every reference checker reject it.
fn gold_rounding(p: &Node, g: &Node) -> Option<u32> {
    let (decimals, sig) = decimal_literal(g)?;
    let (pd, _) = decimal_literal(p)?;
    (sig >= 2 && pd >= decimals + 2).then_some(decimals)
}

/// `(decimals, significant digits)` when the node is a decimal literal like `2.6667` or `-0.33`.
fn decimal_literal(n: &Node) -> Option<(u32, u32)> {
    match n {
        Node::Neg(a) => decimal_literal(a),
        Node::Num {
            value,
            decimals: Some(d),
        } => {
            let scaled =
                value * BigRational::from_integer(num_traits::pow(BigInt::from(10), *d as usize));
            let digits = scaled.to_integer().abs().to_string();
            let sig = digits.trim_start_matches('0').len() as u32;
            Some((*d, sig.max(1)))
        }
        _ => None,
    }
}

fn norm_text(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(|c| c.to_lowercase())
        .collect()
}
