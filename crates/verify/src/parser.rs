//! Recursive-descent parser from tokens to [`Node`].
//!
//! Precedence, loosest first: lists (`,` `;` `and` `or`) → relations (`=` `<` `\le` `\in` ...) →
//! ratios (`:`) → set operations (`\cup`) → sums (`+ - \pm`) → products (`* / \mod`, implicit) →
//! unary signs → postfix (`!` `%`) → powers/subscripts → primaries. Depth is capped at
//! [`MAX_DEPTH`], so hostile nesting yields an error instead of a stack overflow.

use crate::ast::{CalcOp, Calculus, Func, Node, RelOp, SeqKind};
use crate::budget::{Budget, MAX_DEPTH};
use crate::lexer::{lex, word_is_prose, LexError, Tok};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    Budget,
    Syntax(String),
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        match e {
            LexError::Budget => ParseError::Budget,
        }
    }
}

type PResult<T> = Result<T, ParseError>;

/// Parse an (already extracted and normalised) answer.
pub fn parse(s: &str, budget: &mut Budget) -> PResult<Node> {
    let toks = lex(s, budget)?;
    let mut p = Parser {
        t: toks,
        i: 0,
        depth: 0,
        abs_depth: 0,
        budget,
    };
    if p.t.is_empty() {
        return Err(ParseError::Syntax("empty answer".into()));
    }
    let node = p.list()?;
    if p.i < p.t.len() {
        return Err(ParseError::Syntax(format!(
            "unexpected token {:?}",
            p.t[p.i]
        )));
    }
    Ok(node)
}

struct Parser<'b> {
    t: Vec<Tok>,
    i: usize,
    depth: u32,
    abs_depth: u32,
    budget: &'b mut Budget,
}

fn err<T>(msg: &str) -> PResult<T> {
    Err(ParseError::Syntax(msg.to_string()))
}

fn is_connective(t: &Tok) -> bool {
    match t {
        Tok::Ch(',') | Tok::Ch(';') => true,
        Tok::Word(w) => matches!(w.to_ascii_lowercase().as_str(), "and" | "or"),
        _ => false,
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.t.get(self.i + k)
    }

    fn bump(&mut self) -> PResult<Tok> {
        self.budget.spend(1).map_err(|_| ParseError::Budget)?;
        let t = self
            .t
            .get(self.i)
            .cloned()
            .ok_or_else(|| ParseError::Syntax("unexpected end".into()))?;
        self.i += 1;
        Ok(t)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok) -> PResult<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(ParseError::Syntax(format!(
                "expected {t:?}, found {:?}",
                self.peek()
            )))
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        self.budget.spend(1).map_err(|_| ParseError::Budget)?;
        if self.depth > MAX_DEPTH {
            return err("nesting too deep");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Tokens that end a list item.
    fn at_list_end(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(Tok::Ch(')'))
                | Some(Tok::Ch(']'))
                | Some(Tok::Ch('}'))
                | Some(Tok::SetClose)
                | Some(Tok::Ch('&'))
                | Some(Tok::RowSep)
                | Some(Tok::End(_))
        )
    }

    fn list(&mut self) -> PResult<Node> {
        self.enter()?;
        // At the top level `;` separates groups of `,`-separated items: `p=5, q=2; p=7, q=2` is
        // two pairs (inside brackets it is one more separator: `(1,1;2,2)`).
        let top = self.depth == 1;
        let mut groups: Vec<Vec<Node>> = vec![Vec::new()];
        // Leading connectives (e.g. "and 5") are noise.
        while self.peek().is_some_and(is_connective) {
            self.i += 1;
        }
        if !self.at_list_end() {
            groups[0].push(self.relation()?);
        }
        while self.peek().is_some_and(is_connective) {
            let mut new_group = false;
            while self.peek().is_some_and(is_connective) {
                new_group |= self.peek() == Some(&Tok::Ch(';'));
                self.i += 1;
            }
            if self.at_list_end() {
                break;
            }
            if new_group && groups.last().is_some_and(|g| !g.is_empty()) {
                groups.push(Vec::new());
            }
            let item = self.relation()?;
            groups.last_mut().unwrap().push(item);
        }
        self.leave();
        let grouped = top && groups.len() > 1 && groups.iter().any(|g| g.len() > 1);
        let items: Vec<Node> = if grouped {
            groups
                .into_iter()
                .map(|mut g| {
                    if g.len() == 1 {
                        g.pop().unwrap()
                    } else {
                        Node::Seq(SeqKind::Tuple('(', ')'), g)
                    }
                })
                .collect()
        } else {
            groups.into_iter().flatten().collect()
        };
        let mut items = items;
        match items.len() {
            0 => err("empty group"),
            1 => Ok(items.pop().unwrap()),
            _ => Ok(Node::Seq(SeqKind::List, items)),
        }
    }

    fn rel_op(&self) -> Option<RelOp> {
        Some(match self.peek()? {
            Tok::Ch('=') => RelOp::Eq,
            Tok::Ch('<') => RelOp::Lt,
            Tok::Ch('>') => RelOp::Gt,
            Tok::Le => RelOp::Le,
            Tok::Ge => RelOp::Ge,
            Tok::Ne => RelOp::Ne,
            Tok::Approx => RelOp::Approx,
            Tok::In => RelOp::In,
            _ => return None,
        })
    }

    fn relation(&mut self) -> PResult<Node> {
        let first = self.ratio()?;
        let mut parts = vec![first];
        let mut ops = Vec::new();
        while let Some(op) = self.rel_op() {
            self.i += 1;
            if self.at_list_end() || self.peek().is_some_and(is_connective) {
                // Dangling relation such as `x =`: keep what we have.
                break;
            }
            ops.push(op);
            parts.push(self.ratio()?);
        }
        if ops.is_empty() {
            Ok(parts.pop().unwrap())
        } else {
            Ok(Node::Rel { parts, ops })
        }
    }

    fn ratio(&mut self) -> PResult<Node> {
        let first = self.set_expr()?;
        if self.peek() != Some(&Tok::Ch(':')) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(&Tok::Ch(':')) {
            items.push(self.set_expr()?);
        }
        Ok(Node::Seq(SeqKind::Ratio, items))
    }

    fn set_expr(&mut self) -> PResult<Node> {
        let first = self.sum()?;
        if !matches!(
            self.peek(),
            Some(Tok::Cup) | Some(Tok::Cap) | Some(Tok::Setminus)
        ) {
            return Ok(first);
        }
        // Left to right, as written: `A \cup B \cap C` is `(A ∪ B) ∩ C`. Operands in plain
        // braces (`{1,2} \cup {3}`) are sets.
        let mut acc = as_set_operand(first);
        while let Some(op @ (Tok::Cup | Tok::Cap | Tok::Setminus)) = self.peek().cloned() {
            self.i += 1;
            let next = as_set_operand(self.sum()?);
            acc = match (op, acc) {
                (Tok::Cup, Node::Union(mut v)) => {
                    v.push(next);
                    Node::Union(v)
                }
                (Tok::Cup, a) => Node::Union(vec![a, next]),
                (Tok::Cap, Node::Inter(mut v)) => {
                    v.push(next);
                    Node::Inter(v)
                }
                (Tok::Cap, a) => Node::Inter(vec![a, next]),
                (_, a) => Node::Diff(Box::new(a), Box::new(next)),
            };
        }
        Ok(acc)
    }

    fn sum(&mut self) -> PResult<Node> {
        self.enter()?;
        let mut terms = vec![self.term()?];
        loop {
            match self.peek() {
                Some(Tok::Ch('+')) => {
                    self.i += 1;
                    terms.push(self.term()?);
                }
                Some(Tok::Ch('-')) => {
                    self.i += 1;
                    let t = self.term()?;
                    terms.push(Node::Neg(Box::new(t)));
                }
                Some(Tok::Pm) | Some(Tok::Mp) => {
                    let minus_plus = self.peek() == Some(&Tok::Mp);
                    self.i += 1;
                    let b = self.term()?;
                    let a = if terms.len() == 1 {
                        terms.pop().unwrap()
                    } else {
                        Node::Add(std::mem::take(&mut terms))
                    };
                    terms = vec![Node::Pm {
                        a: Box::new(a),
                        b: Box::new(b),
                        minus_plus,
                    }];
                }
                _ => break,
            }
        }
        self.leave();
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Node::Add(terms)
        })
    }

    /// Whether the next token can start an implicitly multiplied factor.
    fn starts_factor(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Text(_)) | Some(Tok::Begin(_)) | Some(Tok::Var(_)) => {
                true
            }
            Some(Tok::Word(w)) => !matches!(
                w.to_ascii_lowercase().as_str(),
                "and" | "or" | "mod" | "percent" | "percentage" | "pct"
            ),
            Some(Tok::Cmd(c)) => !matches!(c.as_str(), "mod" | "pmod" | "choose"),
            Some(Tok::Ch('(')) | Some(Tok::SetOpen) | Some(Tok::Lfloor) | Some(Tok::Lceil)
            | Some(Tok::Ch('{')) | Some(Tok::Ch('[')) => true,
            Some(Tok::Ch('|')) => self.abs_depth == 0,
            _ => false,
        }
    }

    fn term(&mut self) -> PResult<Node> {
        let mut factors = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::Ch('*')) => {
                    self.i += 1;
                    factors.push(self.unary()?);
                }
                Some(Tok::Ch('/')) => {
                    self.i += 1;
                    let d = self.unary()?;
                    let n = if factors.len() == 1 {
                        factors.pop().unwrap()
                    } else {
                        Node::Mul(std::mem::take(&mut factors))
                    };
                    factors = vec![Node::Div(Box::new(n), Box::new(d))];
                }
                Some(Tok::Cmd(c)) if c == "mod" => {
                    self.i += 1;
                    let d = self.unary()?;
                    let n = if factors.len() == 1 {
                        factors.pop().unwrap()
                    } else {
                        Node::Mul(std::mem::take(&mut factors))
                    };
                    factors = vec![Node::Func(Func::Mod, vec![n, d])];
                }
                Some(Tok::Word(w)) if w == "mod" => {
                    self.i += 1;
                    let d = self.unary()?;
                    let n = if factors.len() == 1 {
                        factors.pop().unwrap()
                    } else {
                        Node::Mul(std::mem::take(&mut factors))
                    };
                    factors = vec![Node::Func(Func::Mod, vec![n, d])];
                }
                Some(Tok::Cmd(c)) if c == "pmod" => {
                    self.i += 1;
                    let d = self.arg()?;
                    let n = if factors.len() == 1 {
                        factors.pop().unwrap()
                    } else {
                        Node::Mul(std::mem::take(&mut factors))
                    };
                    factors = vec![Node::Func(Func::Mod, vec![n, d])];
                }
                Some(Tok::Num(_)) if matches!(factors.last(), Some(Node::Num { .. })) => {
                    return err("two adjacent numbers");
                }
                _ if self.starts_factor() => {
                    let mixed_candidate = factors.len() == 1
                        && int_literal(&factors[0]).is_some()
                        && matches!(self.peek(), Some(Tok::Cmd(c)) if c == "frac");
                    let f = self.postfix()?;
                    if mixed_candidate {
                        if let Some(m) = mixed_number(&factors[0], &f) {
                            factors[0] = m;
                            continue;
                        }
                    }
                    factors.push(f);
                }
                _ => break,
            }
        }
        Ok(if factors.len() == 1 {
            factors.pop().unwrap()
        } else {
            // Braces juxtaposed with other factors group, as parentheses do: `\{1+2\}\{3-4\}`.
            Node::Mul(factors.into_iter().map(ungroup).collect())
        })
    }

    fn unary(&mut self) -> PResult<Node> {
        self.enter()?;
        let r = match self.peek() {
            Some(Tok::Ch('-')) => {
                self.i += 1;
                Node::Neg(Box::new(self.unary()?))
            }
            Some(Tok::Ch('+')) => {
                self.i += 1;
                self.unary()?
            }
            Some(Tok::Pm) | Some(Tok::Mp) => {
                let minus_plus = self.peek() == Some(&Tok::Mp);
                self.i += 1;
                let b = self.unary()?;
                Node::Pm {
                    a: Box::new(Node::int(0)),
                    b: Box::new(b),
                    minus_plus,
                }
            }
            _ => self.postfix()?,
        };
        self.leave();
        Ok(r)
    }

    fn postfix(&mut self) -> PResult<Node> {
        let mut base = self.power()?;
        loop {
            match self.peek() {
                Some(Tok::Ch('!')) => {
                    self.i += 1;
                    base = Node::Factorial(Box::new(base));
                }
                Some(Tok::Ch('%')) => {
                    self.i += 1;
                    base = Node::Percent(Box::new(base));
                }
                Some(Tok::Word(w)) if is_percent_word(w) => {
                    self.i += 1;
                    base = Node::Percent(Box::new(base));
                }
                _ => break,
            }
        }
        Ok(base)
    }

    fn power(&mut self) -> PResult<Node> {
        let mut base = self.primary()?;
        loop {
            match self.peek() {
                Some(Tok::Ch('^')) => {
                    self.i += 1;
                    match self.exponent()? {
                        None => {} // degree sign
                        Some(e) => base = Node::Pow(Box::new(base), Box::new(e)),
                    }
                }
                Some(Tok::Ch('_')) => {
                    self.i += 1;
                    let sub = self.subscript_text()?;
                    base = apply_subscript(base, &sub)?;
                }
                Some(Tok::Ch('\'')) => {
                    self.i += 1;
                    match base {
                        Node::Sym(s) => base = Node::Sym(format!("{s}'")),
                        _ => return err("prime on a non-symbol"),
                    }
                }
                _ => break,
            }
        }
        Ok(base)
    }

    /// The exponent after `^`: a group, or a single character/token (`x^23` is `x^2·3`).
    /// Returns None for a degree sign (`^\circ`).
    fn exponent(&mut self) -> PResult<Option<Node>> {
        match self.peek().cloned() {
            Some(Tok::Cmd(c)) if c == "circ" => {
                self.i += 1;
                Ok(None)
            }
            Some(Tok::Ch('{')) => {
                if matches!(self.peek_at(1), Some(Tok::Cmd(c)) if c == "circ")
                    && self.peek_at(2) == Some(&Tok::Ch('}'))
                {
                    self.i += 3;
                    return Ok(None);
                }
                if self.peek_at(1) == Some(&Tok::Ch('}')) {
                    // `^{}` (e.g. `^{\circ}` after the lexer dropped `\circ`)
                    self.i += 2;
                    return Ok(None);
                }
                Ok(Some(self.arg()?))
            }
            Some(Tok::Ch('-')) => {
                self.i += 1;
                let e = self
                    .exponent()?
                    .ok_or_else(|| ParseError::Syntax("bad exponent".into()))?;
                Ok(Some(Node::Neg(Box::new(e))))
            }
            Some(Tok::Ch('(')) => Ok(Some(self.primary()?)),
            Some(_) => Ok(Some(self.single_token_arg()?)),
            None => {
                // `^\circ` where the lexer dropped `\circ`, at the end.
                Ok(None)
            }
        }
    }

    /// A LaTeX argument: `{...}` or a single token (`\frac12` → `1`, `2`).
    fn arg(&mut self) -> PResult<Node> {
        if self.eat(&Tok::Ch('{')) {
            self.enter()?;
            let n = self.list()?;
            self.expect(&Tok::Ch('}'))?;
            self.leave();
            Ok(n)
        } else {
            self.single_token_arg()
        }
    }

    fn single_token_arg(&mut self) -> PResult<Node> {
        match self.peek().cloned() {
            Some(Tok::Num(s)) if s.len() > 1 && !s.contains('.') => {
                // Only the first digit belongs to the argument.
                let (first, rest) = s.split_at(1);
                self.t[self.i] = Tok::Num(rest.to_string());
                Ok(number(first)?)
            }
            Some(Tok::Word(w))
                if w.len() > 1 && !word_is_prose(&w) && Func::from_name(&w).is_none() =>
            {
                let (first, rest) = w.split_at(1);
                self.t[self.i] = Tok::Word(rest.to_string());
                Ok(Node::Sym(first.to_string()))
            }
            _ => self.primary(),
        }
    }

    /// Subscript as text (`_{37}` → "37", `_2` → "2", `_{MBCN}` → "MBCN").
    fn subscript_text(&mut self) -> PResult<String> {
        let mut out = String::new();
        if self.eat(&Tok::Ch('{')) {
            let mut depth = 1usize;
            loop {
                let t = self.bump()?;
                match &t {
                    Tok::Ch('{') => depth += 1,
                    Tok::Ch('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                out.push_str(&tok_text(&t));
            }
        } else {
            match self.bump()? {
                Tok::Num(s) if s.len() > 1 && !s.contains('.') => {
                    let (first, rest) = s.split_at(1);
                    self.i -= 1;
                    self.t[self.i] = Tok::Num(rest.to_string());
                    out.push_str(first);
                }
                Tok::Word(w) if w.len() > 1 => {
                    let (first, rest) = w.split_at(1);
                    self.i -= 1;
                    self.t[self.i] = Tok::Word(rest.to_string());
                    out.push_str(first);
                }
                t => out.push_str(&tok_text(&t)),
            }
        }
        Ok(out)
    }

    fn primary(&mut self) -> PResult<Node> {
        self.enter()?;
        let t = self.bump()?;
        let r = match t {
            Tok::Num(s) => number(&s)?,
            Tok::Word(w) => self.word(w)?,
            Tok::Cmd(c) => self.command(c)?,
            Tok::Text(s) => Node::Text(s),
            Tok::Ch('(') => self.bracketed('(')?,
            Tok::Ch('[') => self.bracketed('[')?,
            Tok::Ch('{') => {
                let n = self.list()?;
                if matches!(self.peek(), Some(Tok::Cmd(c)) if c == "choose") {
                    // `{n \choose k}`
                    self.i += 1;
                    let k = self.list()?;
                    self.expect(&Tok::Ch('}'))?;
                    Node::Func(Func::Binom, vec![n, k])
                } else {
                    self.expect(&Tok::Ch('}'))?;
                    n
                }
            }
            Tok::Var(name) => variable(&name, self.budget)?,
            Tok::SetOpen => {
                if self.eat(&Tok::SetClose) {
                    Node::Seq(SeqKind::Set, vec![])
                } else {
                    let n = self.list()?;
                    self.expect(&Tok::SetClose)?;
                    match n {
                        Node::Seq(SeqKind::List, items) => Node::Seq(SeqKind::Set, items),
                        other => Node::Seq(SeqKind::Set, vec![other]),
                    }
                }
            }
            Tok::Ch('|') => {
                self.abs_depth += 1;
                let n = self.sum();
                self.abs_depth -= 1;
                let n = n?;
                self.expect(&Tok::Ch('|'))?;
                Node::Func(Func::Abs, vec![n])
            }
            Tok::Lfloor => {
                let n = self.sum()?;
                self.expect(&Tok::Rfloor)?;
                Node::Func(Func::Floor, vec![n])
            }
            Tok::Lceil => {
                let n = self.sum()?;
                self.expect(&Tok::Rceil)?;
                Node::Func(Func::Ceil, vec![n])
            }
            Tok::Begin(env) => self.matrix(&env)?,
            other => return Err(ParseError::Syntax(format!("unexpected {other:?}"))),
        };
        self.leave();
        Ok(r)
    }

    /// `( ... )` or `[ ... ]`, closed by either bracket: a group, a tuple or an interval.
    fn bracketed(&mut self, open: char) -> PResult<Node> {
        let inner = self.list()?;
        let close = match self.bump()? {
            Tok::Ch(c @ (')' | ']')) => c,
            other => {
                return Err(ParseError::Syntax(format!(
                    "expected closing bracket, found {other:?}"
                )))
            }
        };
        match inner {
            Node::Seq(SeqKind::List, items) => Ok(Node::Seq(SeqKind::Tuple(open, close), items)),
            single if open == '(' && close == ')' => Ok(single),
            single if open == '[' && close == ']' => Ok(single),
            _ => err("mismatched brackets around a single value"),
        }
    }

    fn matrix(&mut self, env: &str) -> PResult<Node> {
        if !matches!(
            env,
            "pmatrix"
                | "bmatrix"
                | "Bmatrix"
                | "matrix"
                | "smallmatrix"
                | "array"
                | "vmatrix"
                | "Vmatrix"
        ) {
            return Err(ParseError::Syntax(format!("unsupported environment {env}")));
        }
        let mut rows: Vec<Vec<Node>> = Vec::new();
        let mut row: Vec<Node> = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::End(_)) => {
                    self.i += 1;
                    break;
                }
                None => return err("unterminated matrix"),
                Some(Tok::Ch('&')) => {
                    self.i += 1;
                    return err("empty matrix cell");
                }
                Some(Tok::RowSep) => {
                    self.i += 1;
                    if !row.is_empty() {
                        rows.push(std::mem::take(&mut row));
                    }
                    continue;
                }
                _ => {}
            }
            row.push(self.relation()?);
            if self.eat(&Tok::Ch('&')) {
                if matches!(self.peek(), Some(Tok::RowSep) | Some(Tok::End(_))) {
                    return err("empty matrix cell");
                }
                continue;
            }
        }
        if !row.is_empty() {
            rows.push(row);
        }
        if rows.is_empty() || rows.iter().any(|r| r.len() != rows[0].len()) {
            return err("ragged matrix");
        }
        Ok(Node::Matrix(rows))
    }

    fn word(&mut self, w: String) -> PResult<Node> {
        let lower = w.to_ascii_lowercase();
        if w.len() == 1 {
            let c = w.chars().next().unwrap();
            return Ok(match c {
                'e' => Node::E,
                'i' | 'I' => Node::I,
                _ => {
                    if matches!(c, 'f' | 'g' | 'h' | 'F' | 'G' | 'H' | 'P' | 'Q' | 'W') {
                        if self.peek() == Some(&Tok::Ch('(')) {
                            return self.apply(w);
                        }
                        // SymPy's printing `f{\left(x \right)}`.
                        if self.peek() == Some(&Tok::Ch('{'))
                            && self.peek_at(1) == Some(&Tok::Ch('('))
                        {
                            self.i += 1;
                            let call = self.apply(w)?;
                            self.expect(&Tok::Ch('}'))?;
                            return Ok(call);
                        }
                    }
                    Node::Sym(w)
                }
            });
        }
        if let Some(f) = Func::from_name(&lower) {
            return self.function(f);
        }
        if let Some(v) = number_word(&lower) {
            return Ok(Node::int(v));
        }
        match lower.as_str() {
            "pi" => return Ok(Node::Pi),
            "inf" | "infty" | "infinity" | "oo" => return Ok(Node::Inf),
            "sqrt" => return self.command("sqrt".into()),
            _ => {}
        }
        if word_is_prose(&w) {
            // Collect consecutive prose words into one text node.
            let mut text = w;
            while let Some(Tok::Word(next)) = self.peek() {
                if word_is_prose(next)
                    && !matches!(
                        next.as_str(),
                        "and" | "or" | "percent" | "percentage" | "pct" | "mod"
                    )
                {
                    text.push(' ');
                    text.push_str(next);
                    self.i += 1;
                } else {
                    break;
                }
            }
            return Ok(Node::Text(text));
        }
        // A short run of letters is a product of single-letter variables (`ab`, `xy`).
        let mut factors: Vec<Node> = Vec::new();
        for ch in w.chars() {
            factors.push(match ch {
                'e' => Node::E,
                'i' => Node::I,
                _ => Node::Sym(ch.to_string()),
            });
        }
        Ok(Node::Mul(factors))
    }

    fn apply(&mut self, name: String) -> PResult<Node> {
        self.expect(&Tok::Ch('('))?;
        let inner = self.list()?;
        self.expect(&Tok::Ch(')'))?;
        let args = match inner {
            Node::Seq(SeqKind::List, items) => items,
            other => vec![other],
        };
        Ok(Node::Apply(name, args))
    }

    fn command(&mut self, c: String) -> PResult<Node> {
        if let Some(f) = Func::from_name(&c) {
            return self.function(f);
        }
        Ok(match c.as_str() {
            "frac" if self.derivative_operator().is_some() => {
                let (var, skip) = self.derivative_operator().unwrap();
                self.i += skip;
                let body = ungroup(self.term()?);
                Node::Calc(Box::new(Calculus {
                    op: CalcOp::Derivative,
                    var: Some(var),
                    lower: None,
                    upper: None,
                    body,
                }))
            }
            "int" | "iint" | "oint" => self.integral()?,
            "sum" | "prod" => self.big_operator(c == "sum")?,
            "lim" => self.limit()?,
            "frac" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Node::Div(Box::new(a), Box::new(b))
            }
            "sqrt" => {
                let index = if self.eat(&Tok::Ch('[')) {
                    let n = self.sum()?;
                    self.expect(&Tok::Ch(']'))?;
                    Some(n)
                } else {
                    None
                };
                let x = self.arg()?;
                let e = match index {
                    None => Node::Div(Box::new(Node::int(1)), Box::new(Node::int(2))),
                    Some(n) => Node::Div(Box::new(Node::int(1)), Box::new(n)),
                };
                Node::Pow(Box::new(x), Box::new(e))
            }
            "pi" => Node::Pi,
            "infty" => Node::Inf,
            "emptyset" | "varnothing" => Node::Seq(SeqKind::Set, vec![]),
            "floor" | "ceil" => {
                let f = if c == "floor" {
                    Func::Floor
                } else {
                    Func::Ceil
                };
                let a = self.arg()?;
                Node::Func(f, vec![a])
            }
            "alpha" | "beta" | "gamma" | "delta" | "epsilon" | "varepsilon" | "zeta" | "eta"
            | "theta" | "vartheta" | "iota" | "kappa" | "lambda" | "mu" | "nu" | "xi" | "rho"
            | "sigma" | "tau" | "upsilon" | "phi" | "varphi" | "chi" | "psi" | "omega"
            | "Gamma" | "Delta" | "Theta" | "Lambda" | "Xi" | "Pi" | "Sigma" | "Phi" | "Psi"
            | "Omega" => Node::Sym(c),
            "choose" => return err("\\choose outside a brace group"),
            // An unknown command names something (`\zzz`): a symbol, as in latex2sympy.
            _ => Node::Sym(format!("\\{c}")),
        })
    }

    /// After `\frac`: `{d}{dx}` (or `{d}{d x}`, `{d}{d\theta}`) is the derivative operator.
    /// Returns the variable and the number of tokens it spans.
    fn derivative_operator(&self) -> Option<(String, usize)> {
        let t = |k: usize| self.peek_at(k);
        if t(0) != Some(&Tok::Ch('{'))
            || !matches!(t(1), Some(Tok::Word(w)) if w == "d")
            || t(2) != Some(&Tok::Ch('}'))
            || t(3) != Some(&Tok::Ch('{'))
        {
            return None;
        }
        let (var, len) = differential(&self.t[self.i + 4..])?;
        (self.peek_at(4 + len) == Some(&Tok::Ch('}'))).then_some((var, 5 + len))
    }

    /// Optional `_lower` and `^upper`, in either order; an empty group (`_{}`) is no bound.
    fn bounds(&mut self) -> PResult<(Option<Node>, Option<Node>)> {
        let (mut lower, mut upper) = (None, None);
        for _ in 0..2 {
            let slot = if self.eat(&Tok::Ch('_')) {
                &mut lower
            } else if self.eat(&Tok::Ch('^')) {
                &mut upper
            } else {
                break;
            };
            if self.peek() == Some(&Tok::Ch('{')) && self.peek_at(1) == Some(&Tok::Ch('}')) {
                self.i += 2;
                continue;
            }
            *slot = Some(self.arg()?);
        }
        Ok((lower, upper))
    }

    /// `\int_a^b body dx`: the body runs to its differential (`dx`, `d\theta`), which may also
    /// sit inside it (`\int \frac{dz}{z}`, `\int (x\,dx)`), where it stands for a factor 1.
    fn integral(&mut self) -> PResult<Node> {
        let (lower, upper) = self.bounds()?;
        let mut depth = 0usize;
        let mut j = self.i;
        let mut nested: Option<(usize, usize, String)> = None;
        let mut at_end: Option<(usize, usize, String)> = None;
        while j < self.t.len() {
            // Nested integrals rescan their bodies: the scan is paid for.
            self.budget.spend(1).map_err(|_| ParseError::Budget)?;
            let tok = &self.t[j];
            if depth == 0 && (ends_operand(tok) || is_closer(tok)) {
                break;
            }
            if let Some((var, len)) = differential(&self.t[j..]) {
                if depth == 0 {
                    at_end = Some((j, len, var));
                    break;
                }
                nested = Some((j, len, var));
                j += len;
                continue;
            }
            if is_opener(tok) {
                depth += 1;
            } else if is_closer(tok) {
                depth -= 1;
            }
            j += 1;
        }
        let (mut body_toks, resume, var) = match (at_end, nested) {
            (Some((k, len, var)), _) => (self.t[self.i..k].to_vec(), k + len, Some(var)),
            (None, Some((k, len, var))) => {
                let mut v = self.t[self.i..j].to_vec();
                let mut at = k - self.i;
                v.drain(at..at + len);
                if at > 0 && v[at - 1] == Tok::Ch('*') {
                    at -= 1;
                    v.remove(at);
                }
                // A differential alone in its group (`\frac{dz}{z}`) leaves the factor 1.
                if at == 0 || is_opener(&v[at - 1]) && v.get(at).is_none_or(is_closer) {
                    v.insert(at, Tok::Num("1".into()));
                }
                (v, j, Some(var))
            }
            (None, None) => (self.t[self.i..j].to_vec(), j, None),
        };
        if body_toks.is_empty() {
            body_toks.push(Tok::Num("1".into()));
        }
        self.i = resume;
        let body = ungroup(self.sub_parse(body_toks)?);
        Ok(Node::Calc(Box::new(Calculus {
            op: CalcOp::Integral,
            var,
            lower,
            upper,
            body,
        })))
    }

    /// Parses `toks` as one complete expression with this parser's budget and depth.
    fn sub_parse(&mut self, toks: Vec<Tok>) -> PResult<Node> {
        let mut p = Parser {
            t: toks,
            i: 0,
            depth: self.depth,
            abs_depth: 0,
            budget: &mut *self.budget,
        };
        let n = p.list()?;
        if p.i < p.t.len() {
            return err("trailing tokens in an operand");
        }
        Ok(n)
    }

    /// `\sum_{k=1}^{n} body` / `\prod`: the index and its start from the lower bound, the body a
    /// product (`\sum_k a_k + 1` is `(\sum_k a_k) + 1`).
    fn big_operator(&mut self, sum: bool) -> PResult<Node> {
        let (lower, upper) = self.bounds()?;
        let (var, lower) = match lower {
            Some(Node::Rel { mut parts, ops }) if ops == [RelOp::Eq] && parts.len() == 2 => {
                let start = parts.pop().unwrap();
                (Some(symbol_name(&parts[0])?), Some(start))
            }
            Some(other) => (Some(symbol_name(&other)?), None),
            None => (None, None),
        };
        let body = ungroup(self.term()?);
        Ok(Node::Calc(Box::new(Calculus {
            op: if sum { CalcOp::Sum } else { CalcOp::Product },
            var,
            lower,
            upper,
            body,
        })))
    }

    /// `\lim_{x \to a^{+}} body` (the arrow itself is dropped by the lexer).
    fn limit(&mut self) -> PResult<Node> {
        self.expect(&Tok::Ch('_'))?;
        self.expect(&Tok::Ch('{'))?;
        let start = self.i;
        let mut depth = 1usize;
        while depth > 0 {
            match self.bump()? {
                Tok::Ch('{') => depth += 1,
                Tok::Ch('}') => depth -= 1,
                _ => {}
            }
        }
        let mut inner: Vec<Tok> = self.t[start..self.i - 1].to_vec();
        if inner.is_empty() {
            return err("empty limit subscript");
        }
        let var = symbol_name(&self.sub_parse(vec![inner.remove(0)])?)?;
        // A trailing `^+`, `^{-}` is the side of approach.
        let mut dir = 1i8;
        let tail: Vec<&Tok> = inner.iter().rev().take(4).collect();
        let side = |t: &Tok| match t {
            Tok::Ch('+') => Some(1i8),
            Tok::Ch('-') => Some(-1i8),
            _ => None,
        };
        if tail.len() >= 2 && *tail[1] == Tok::Ch('^') {
            if let Some(d) = side(tail[0]) {
                dir = d;
                inner.truncate(inner.len() - 2);
            }
        } else if tail.len() >= 4
            && *tail[3] == Tok::Ch('^')
            && *tail[2] == Tok::Ch('{')
            && *tail[0] == Tok::Ch('}')
        {
            if let Some(d) = side(tail[1]) {
                dir = d;
                inner.truncate(inner.len() - 4);
            }
        }
        let point = self.sub_parse(inner)?;
        let body = ungroup(self.term()?);
        Ok(Node::Calc(Box::new(Calculus {
            op: CalcOp::Limit(dir),
            var: Some(var),
            lower: Some(point),
            upper: None,
            body,
        })))
    }

    /// A known function: optional `^power` and `_base`, then a bracketed or bare argument.
    fn function(&mut self, f: Func) -> PResult<Node> {
        let mut power: Option<Node> = None;
        let mut base: Option<Node> = None;
        for _ in 0..2 {
            if self.eat(&Tok::Ch('^')) {
                power = self.exponent()?;
            } else if self.eat(&Tok::Ch('_')) {
                base = Some(self.arg()?);
            }
        }
        let args: Vec<Node> = if f == Func::Binom && self.peek() != Some(&Tok::Ch('(')) {
            let a = self.arg()?;
            let b = self.arg()?;
            vec![a, b]
        } else if self.peek() == Some(&Tok::Ch('(')) {
            self.i += 1;
            let inner = self.list()?;
            self.expect(&Tok::Ch(')'))?;
            match inner {
                Node::Seq(SeqKind::List, items) => items,
                other => vec![other],
            }
        } else if self.peek() == Some(&Tok::Ch('{')) {
            let a = self.arg()?;
            match a {
                Node::Seq(SeqKind::List, items) => items,
                other => vec![other],
            }
        } else if matches!(self.peek(), Some(Tok::SetOpen) | Some(Tok::Ch('['))) {
            // `\sin\{\theta\}`, `\sin[\theta]`: brackets used as the argument's parentheses.
            match ungroup(self.primary()?) {
                Node::Seq(SeqKind::Set | SeqKind::List, items) => items,
                other => vec![other],
            }
        } else if f.is_prefix_operator() {
            // Bare argument: `\sin 2x`, `\log_2 8`, `\sin x \cos x` (stops before `\cos`).
            let mut factors = vec![self.postfix()?];
            while self.starts_factor()
                && !matches!(self.peek(), Some(Tok::Cmd(c)) if Func::from_name(c).is_some())
                && !matches!(self.peek(), Some(Tok::Word(w)) if Func::from_name(&w.to_ascii_lowercase()).is_some())
                && !matches!(self.peek(), Some(Tok::Ch('(')))
            {
                factors.push(self.postfix()?);
            }
            vec![if factors.len() == 1 {
                factors.pop().unwrap()
            } else {
                Node::Mul(factors)
            }]
        } else if f == Func::Binom {
            let a = self.arg()?;
            let b = self.arg()?;
            vec![a, b]
        } else {
            return err("function without arguments");
        };
        let mut args = args;
        if let Some(b) = base {
            if f != Func::Log {
                return err("subscript on a function");
            }
            args.push(b);
        }
        let call = match (f, args.len()) {
            (Func::Binom | Func::Mod, 2) => Node::Func(f, args),
            (Func::Log, 1 | 2) => Node::Func(f, args),
            (Func::Gcd | Func::Lcm | Func::Min | Func::Max, n) if n >= 1 => Node::Func(f, args),
            (_, 1) => Node::Func(f, args),
            _ => return err("wrong number of function arguments"),
        };
        Ok(match power {
            // `\sin^{-1}` is the inverse function.
            Some(Node::Neg(ref inner)) if matches!(**inner, Node::Num { ref value, .. } if value.is_one()) =>
            {
                let inv = match f {
                    Func::Sin => Func::Asin,
                    Func::Cos => Func::Acos,
                    Func::Tan => Func::Atan,
                    Func::Sinh => Func::Asinh,
                    Func::Cosh => Func::Acosh,
                    Func::Tanh => Func::Atanh,
                    _ => return Ok(Node::Pow(Box::new(call), Box::new(power.unwrap()))),
                };
                match call {
                    Node::Func(_, a) => Node::Func(inv, a),
                    _ => unreachable!(),
                }
            }
            Some(p) => Node::Pow(Box::new(call), Box::new(p)),
            None => call,
        })
    }
}

/// A differential at the start of `toks`: `dx` (one word), `d x`, `d\theta`. Returns the
/// variable and the number of tokens.
fn differential(toks: &[Tok]) -> Option<(String, usize)> {
    match toks.first()? {
        Tok::Word(w) if w.len() == 2 && w.starts_with('d') => Some((w[1..].to_string(), 1)),
        Tok::Word(w) if w == "d" => match toks.get(1)? {
            Tok::Word(v) if v.len() == 1 => Some((v.clone(), 2)),
            Tok::Cmd(c) if is_greek(c) => Some((c.clone(), 2)),
            _ => None,
        },
        _ => None,
    }
}

fn is_greek(c: &str) -> bool {
    matches!(
        c,
        "alpha"
            | "beta"
            | "gamma"
            | "delta"
            | "epsilon"
            | "varepsilon"
            | "zeta"
            | "eta"
            | "theta"
            | "vartheta"
            | "iota"
            | "kappa"
            | "lambda"
            | "mu"
            | "nu"
            | "xi"
            | "rho"
            | "sigma"
            | "tau"
            | "upsilon"
            | "phi"
            | "varphi"
            | "chi"
            | "psi"
            | "omega"
    )
}

fn is_opener(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Ch('(' | '[' | '{') | Tok::SetOpen | Tok::Lfloor | Tok::Lceil | Tok::Begin(_)
    )
}

fn is_closer(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Ch(')' | ']' | '}') | Tok::SetClose | Tok::Rfloor | Tok::Rceil | Tok::End(_)
    )
}

/// Tokens that end an operand at its own bracket depth: separators and relations.
fn ends_operand(t: &Tok) -> bool {
    is_connective(t)
        || matches!(
            t,
            Tok::Ch('=' | '<' | '>' | '&')
                | Tok::Le
                | Tok::Ge
                | Tok::Ne
                | Tok::Approx
                | Tok::In
                | Tok::RowSep
                | Tok::Cup
                | Tok::Cap
                | Tok::Setminus
        )
}

/// The name of a bound variable (`k`, `x_1`, `\theta`).
fn symbol_name(n: &Node) -> PResult<String> {
    match n {
        Node::Sym(s) => Ok(s.clone()),
        Node::E => Ok("e".into()),
        Node::I => Ok("i".into()),
        _ => err("bound variable is not a symbol"),
    }
}

/// A group written with braces or brackets that holds one value is that value.
fn ungroup(n: Node) -> Node {
    match n {
        Node::Seq(SeqKind::Set | SeqKind::List, mut v) if v.len() == 1 => v.pop().unwrap(),
        other => other,
    }
}

/// An operand of `\cup`/`\cap`/`\setminus`: a plain-brace list is a set, a single value the
/// set of that value.
fn as_set_operand(n: Node) -> Node {
    match n {
        Node::Seq(SeqKind::List, v) => Node::Seq(SeqKind::Set, v),
        n @ (Node::Seq(..) | Node::Union(_) | Node::Inter(_) | Node::Diff(..)) => n,
        other => Node::Seq(SeqKind::Set, vec![other]),
    }
}

fn is_percent_word(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "percent" | "percentage" | "pct"
    )
}

/// `\variable{name}`: the name read as math when it is one simple value (`x`, `x_1`, `1`,
/// `\alpha`), else a symbol spelled as written.
fn variable(name: &str, budget: &mut Budget) -> PResult<Node> {
    if let Ok(n) = parse(name, budget) {
        if matches!(
            n,
            Node::Sym(_) | Node::Num { .. } | Node::E | Node::I | Node::Pi
        ) {
            return Ok(n);
        }
    }
    let spelled: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    if spelled.is_empty() {
        return err("empty \\variable");
    }
    Ok(Node::Sym(spelled))
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Num(s) | Tok::Word(s) | Tok::Cmd(s) | Tok::Text(s) => s.clone(),
        Tok::Ch(c) => c.to_string(),
        _ => String::new(),
    }
}

/// `x_1` → symbol `x_1`; `204_5` → the base-5 integer 54.
fn apply_subscript(base: Node, sub: &str) -> PResult<Node> {
    match base {
        Node::Sym(s) => Ok(Node::Sym(format!("{s}_{sub}"))),
        Node::Num {
            ref value,
            decimals: None,
        } if value.is_integer() => {
            let radix: u32 = sub
                .parse()
                .map_err(|_| ParseError::Syntax("bad base subscript".into()))?;
            if !(2..=36).contains(&radix) {
                return err("base out of range");
            }
            let digits = value.numer().to_string();
            let v = BigInt::parse_bytes(digits.as_bytes(), radix)
                .ok_or_else(|| ParseError::Syntax("digit not valid in base".into()))?;
            Ok(Node::rat(BigRational::from_integer(v)))
        }
        Node::Pi | Node::E | Node::I => Ok(Node::Sym(format!("{base:?}_{sub}"))),
        // `x^2_3`: LaTeX attaches both scripts to the base, in either order.
        Node::Pow(b, e) if matches!(*b, Node::Sym(_)) => {
            Ok(Node::Pow(Box::new(apply_subscript(*b, sub)?), e))
        }
        Node::Mul(mut f) if matches!(f.last(), Some(Node::Sym(_))) => {
            let last = f.pop().unwrap();
            f.push(apply_subscript(last, sub)?);
            Ok(Node::Mul(f))
        }
        _ => err("subscript on an expression"),
    }
}

/// Decimal literal → exact rational, remembering the number of decimals.
pub fn number(s: &str) -> PResult<Node> {
    if let Some((head, rep)) = s.strip_suffix(')').and_then(|t| t.split_once('(')) {
        // Repeating decimal: head = "0.1", rep = "6" → 0.1 + 0.0(6) = 1/6.
        let Node::Num { value: base, .. } = number(head.trim_end_matches('.'))? else {
            unreachable!()
        };
        let k = head.split_once('.').map(|(_, f)| f.len()).unwrap_or(0);
        let r: BigInt = rep
            .parse()
            .map_err(|_| ParseError::Syntax("bad repeating digits".into()))?;
        let nines = num_traits::pow(BigInt::from(10), rep.len()) - 1;
        let scale = num_traits::pow(BigInt::from(10), k);
        let value = base + BigRational::new(r, nines * scale);
        return Ok(Node::Num {
            value,
            decimals: None,
        });
    }
    if let Some((mantissa, exp)) = s.split_once(['e', 'E']) {
        let e: i64 = exp
            .parse()
            .map_err(|_| ParseError::Syntax("bad exponent".into()))?;
        if e.abs() > 400 {
            return err("exponent too large");
        }
        let Node::Num { value, .. } = number(mantissa)? else {
            unreachable!()
        };
        let scale =
            BigRational::from_integer(num_traits::pow(BigInt::from(10), e.unsigned_abs() as usize));
        let value = if e >= 0 { value * scale } else { value / scale };
        return Ok(Node::Num {
            value,
            decimals: None,
        });
    }
    let (int, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    if s.len() > 2_000 {
        return err("number too long");
    }
    let digits = format!("{int}{}", frac.unwrap_or(""));
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    let n = BigInt::parse_bytes(digits.as_bytes(), 10)
        .ok_or_else(|| ParseError::Syntax("bad number".into()))?;
    let decimals = frac.map(|f| f.len() as u32);
    let den = num_traits::pow(BigInt::from(10), decimals.unwrap_or(0) as usize);
    let value = if den.is_zero() {
        BigRational::zero()
    } else {
        BigRational::new(n, den)
    };
    Ok(Node::Num { value, decimals })
}

/// English number words (`five` → 5, `twenty` → 20). Compounds like `twenty-five` are joined
/// before parsing (see `normalize`).
pub fn number_word(w: &str) -> Option<i64> {
    const SMALL: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: &[&str] = &[
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = SMALL.iter().position(|x| *x == w) {
        return Some(i as i64);
    }
    if let Some(i) = TENS.iter().position(|x| *x == w) {
        return Some(20 + 10 * i as i64);
    }
    match w {
        "hundred" => Some(100),
        "thousand" => Some(1000),
        "million" => Some(1_000_000),
        _ => None,
    }
}

/// The integer value of `n` or `-n` for an integer literal.
fn int_literal(n: &Node) -> Option<(bool, &BigRational)> {
    match n {
        Node::Num {
            value,
            decimals: None,
        } if value.is_integer() => Some((false, value)),
        Node::Neg(a) => match &**a {
            Node::Num {
                value,
                decimals: None,
            } if value.is_integer() => Some((true, value)),
            _ => None,
        },
        _ => None,
    }
}

/// Mixed numbers: `15\frac{39}{40}` is 15 + 39/40 (and `-2\frac12` is -(2 + 1/2)) when the
/// fraction is a proper fraction of integer literals.
fn mixed_number(whole: &Node, frac: &Node) -> Option<Node> {
    let (neg, w) = int_literal(whole)?;
    let Node::Div(a, b) = frac else { return None };
    let (
        Node::Num {
            value: n,
            decimals: None,
        },
        Node::Num {
            value: d,
            decimals: None,
        },
    ) = (&**a, &**b)
    else {
        return None;
    };
    if !n.is_integer() || !d.is_integer() || n <= &BigRational::zero() || n >= d {
        return None;
    }
    let v = w + n / d;
    Some(if neg {
        Node::Neg(Box::new(Node::rat(v)))
    } else {
        Node::rat(v)
    })
}
