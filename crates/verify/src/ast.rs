//! The answer tree produced by the parser and consumed by the comparison.

use num_rational::BigRational;

/// Mathematical functions the checker knows how to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    /// Natural logarithm.
    Ln,
    /// `log(x)` (one argument, natural log as in SymPy) or `log_b(x)` (second argument = base).
    Log,
    Exp,
    Abs,
    Floor,
    Ceil,
    Binom,
    Gcd,
    Lcm,
    Min,
    Max,
    /// `a mod n`, result has the sign of the divisor.
    Mod,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" | "tg" => Func::Tan,
            "cot" | "ctg" => Func::Cot,
            "sec" => Func::Sec,
            "csc" | "cosec" => Func::Csc,
            "arcsin" | "asin" => Func::Asin,
            "arccos" | "acos" => Func::Acos,
            "arctan" | "atan" => Func::Atan,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "tanh" => Func::Tanh,
            // Every spelling in use: ISO `arsinh`, the common `arcsinh`, SymPy's `asinh`.
            "arsinh" | "arcsinh" | "asinh" | "argsinh" => Func::Asinh,
            "arcosh" | "arccosh" | "acosh" | "argcosh" => Func::Acosh,
            "artanh" | "arctanh" | "atanh" | "argtanh" => Func::Atanh,
            "ln" => Func::Ln,
            "log" | "lg" => Func::Log,
            "exp" => Func::Exp,
            "abs" => Func::Abs,
            "floor" => Func::Floor,
            "ceil" => Func::Ceil,
            "binom" | "dbinom" | "tbinom" | "choose" => Func::Binom,
            "gcd" => Func::Gcd,
            "lcm" => Func::Lcm,
            "min" => Func::Min,
            "max" => Func::Max,
            _ => return None,
        })
    }

    /// True for functions written before an (optionally unbracketed) argument, like `\sin x`.
    pub fn is_prefix_operator(self) -> bool {
        !matches!(
            self,
            Func::Binom
                | Func::Gcd
                | Func::Lcm
                | Func::Min
                | Func::Max
                | Func::Mod
                | Func::Floor
                | Func::Ceil
                | Func::Abs
        )
    }
}

/// Relation symbols. `>`/`≥` are kept as written; comparison code normalises direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `\approx`: the value before it is the answer, the one after it a rounding.
    Approx,
    /// `x \in S`.
    In,
}

/// Bracketed or separated collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeqKind {
    /// Bare comma/"and" separated answers: compared as an unordered collection.
    List,
    /// `\{ ... \}`: unordered.
    Set,
    /// Bracketed, ordered: `(a,b)`, `[a,b]`, `(a,b]`, `[a,b)`. Open/close characters kept so
    /// intervals can respect open and closed ends.
    Tuple(char, char),
    /// `a : b`.
    Ratio,
}

/// Operators that bind a variable: compared by their structure (same operator, variable and
/// bounds) and the CAS equality of their bodies, never evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CalcOp {
    Integral,
    Sum,
    Product,
    /// `\lim`; the direction is `+1`, `-1`, or `+1` when unwritten (SymPy's default, which the
    /// peers' suites follow).
    Limit(i8),
    Derivative,
}

/// `\int_a^b f\,dx`, `\sum_{k=1}^n f`, `\lim_{x\to a} f`, `\frac{d}{dx} f`.
#[derive(Clone, Debug, PartialEq)]
pub struct Calculus {
    pub op: CalcOp,
    /// The bound variable; None for an integral written without its differential.
    pub var: Option<String>,
    /// Lower bound (the limit point for `\lim`).
    pub lower: Option<Node>,
    pub upper: Option<Node>,
    pub body: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An exact number; `decimals` is set when it was written with a decimal point.
    Num {
        value: BigRational,
        decimals: Option<u32>,
    },
    Sym(String),
    Pi,
    E,
    /// The imaginary unit.
    I,
    Inf,
    Text(String),
    Add(Vec<Node>),
    Mul(Vec<Node>),
    Neg(Box<Node>),
    Div(Box<Node>, Box<Node>),
    Pow(Box<Node>, Box<Node>),
    /// `a ± b` (`minus_plus` = `a ∓ b`).
    Pm {
        a: Box<Node>,
        b: Box<Node>,
        minus_plus: bool,
    },
    Func(Func, Vec<Node>),
    /// Application of an unknown function `f(x)`.
    Apply(String, Vec<Node>),
    Factorial(Box<Node>),
    Percent(Box<Node>),
    Seq(SeqKind, Vec<Node>),
    Union(Vec<Node>),
    /// `A \cap B \cap ...`.
    Inter(Vec<Node>),
    /// `A \setminus B`.
    Diff(Box<Node>, Box<Node>),
    Calc(Box<Calculus>),
    Matrix(Vec<Vec<Node>>),
    Rel {
        parts: Vec<Node>,
        ops: Vec<RelOp>,
    },
}

impl Node {
    pub fn int(v: i64) -> Node {
        Node::Num {
            value: BigRational::from_integer(v.into()),
            decimals: None,
        }
    }

    pub fn rat(value: BigRational) -> Node {
        Node::Num {
            value,
            decimals: None,
        }
    }

    /// True when the node contains a `±`/`∓` anywhere.
    pub fn has_pm(&self) -> bool {
        let mut found = false;
        self.visit(&mut |n| {
            if matches!(n, Node::Pm { .. }) {
                found = true;
            }
        });
        found
    }

    /// True when the node mentions a free symbol or an unknown function.
    pub fn has_symbols(&self) -> bool {
        let mut found = false;
        self.visit(&mut |n| {
            if matches!(n, Node::Sym(_) | Node::Apply(..)) {
                found = true;
            }
        });
        found
    }

    /// Pre-order traversal (depth is bounded by the parser).
    pub fn visit(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        match self {
            Node::Add(v)
            | Node::Mul(v)
            | Node::Func(_, v)
            | Node::Apply(_, v)
            | Node::Seq(_, v)
            | Node::Union(v)
            | Node::Inter(v) => v.iter().for_each(|c| c.visit(f)),
            Node::Neg(a) | Node::Factorial(a) | Node::Percent(a) => a.visit(f),
            Node::Calc(c) => {
                c.lower
                    .iter()
                    .chain(c.upper.iter())
                    .for_each(|x| x.visit(f));
                c.body.visit(f)
            }
            Node::Div(a, b) | Node::Diff(a, b) | Node::Pow(a, b) | Node::Pm { a, b, .. } => {
                a.visit(f);
                b.visit(f)
            }
            Node::Matrix(rows) => rows.iter().flatten().for_each(|c| c.visit(f)),
            Node::Rel { parts, .. } => parts.iter().for_each(|c| c.visit(f)),
            _ => {}
        }
    }

    /// Replaces every `±` by `+` (`sign_plus`) or `-`, keeping `∓` opposite.
    pub fn resolve_pm(&self, sign_plus: bool) -> Node {
        let r = |n: &Node| n.resolve_pm(sign_plus);
        match self {
            Node::Pm { a, b, minus_plus } => {
                let plus = sign_plus != *minus_plus;
                let b = r(b);
                Node::Add(vec![r(a), if plus { b } else { Node::Neg(Box::new(b)) }])
            }
            Node::Add(v) => Node::Add(v.iter().map(r).collect()),
            Node::Mul(v) => Node::Mul(v.iter().map(r).collect()),
            Node::Func(f, v) => Node::Func(*f, v.iter().map(r).collect()),
            Node::Apply(s, v) => Node::Apply(s.clone(), v.iter().map(r).collect()),
            Node::Seq(k, v) => Node::Seq(*k, v.iter().map(r).collect()),
            Node::Union(v) => Node::Union(v.iter().map(r).collect()),
            Node::Inter(v) => Node::Inter(v.iter().map(r).collect()),
            Node::Diff(a, b) => Node::Diff(Box::new(r(a)), Box::new(r(b))),
            Node::Calc(c) => Node::Calc(Box::new(Calculus {
                op: c.op,
                var: c.var.clone(),
                lower: c.lower.as_ref().map(r),
                upper: c.upper.as_ref().map(r),
                body: r(&c.body),
            })),
            Node::Neg(a) => Node::Neg(Box::new(r(a))),
            Node::Factorial(a) => Node::Factorial(Box::new(r(a))),
            Node::Percent(a) => Node::Percent(Box::new(r(a))),
            Node::Div(a, b) => Node::Div(Box::new(r(a)), Box::new(r(b))),
            Node::Pow(a, b) => Node::Pow(Box::new(r(a)), Box::new(r(b))),
            Node::Matrix(rows) => {
                Node::Matrix(rows.iter().map(|row| row.iter().map(r).collect()).collect())
            }
            Node::Rel { parts, ops } => Node::Rel {
                parts: parts.iter().map(r).collect(),
                ops: ops.clone(),
            },
            other => other.clone(),
        }
    }
}
