//! Tokeniser for LaTeX and plain-text math answers.
//!
//! Presentation-only LaTeX (`\left`, `\!`, `\displaystyle`, font commands, `$`) is dropped here,
//! spellings are unified (`\dfrac` → `frac`, `\leq` → `≤`, `×` → `*`, `**` → `^`), and doubly
//! escaped commands from JSON-in-JSON data (`\\frac`) are read as single commands.

use crate::budget::{Budget, Exhausted};

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// Digits with an optional fractional part (`12`, `3.5`, `.5`).
    Num(String),
    /// A run of ASCII letters (split later into symbols, function names or words).
    Word(String),
    /// A LaTeX command name that the parser interprets (`frac`, `sqrt`, `sin`, `alpha`, ...).
    Cmd(String),
    /// Single-character operators and brackets: `+ - * / ^ _ ( ) [ ] { } , ; | = < > ! & : % '`.
    Ch(char),
    Le,
    Ge,
    Ne,
    Pm,
    Mp,
    Approx,
    In,
    Cup,
    Cap,
    Setminus,
    /// `\\` (matrix row separator).
    RowSep,
    /// `\{` and `\}`.
    SetOpen,
    SetClose,
    Lfloor,
    Rfloor,
    Lceil,
    Rceil,
    /// Prose inside `\text{...}`.
    Text(String),
    /// `\variable{name}`: a variable whose name is the whole argument (latex2sympy's spelling
    /// of multi-letter names such as `value_2`).
    Var(String),
    Begin(String),
    End(String),
}

/// Commands that are pure presentation and are skipped.
const IGNORED: &[&str] = &[
    "left",
    "right",
    "mleft",
    "mright",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "biggl",
    "biggr",
    "Biggl",
    "Biggr",
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "limits",
    "nolimits",
    "quad",
    "qquad",
    "enspace",
    "mathstrut",
    "strut",
    "nonumber",
    "notag",
    "boxed",
    "fbox",
    "framebox",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "boldsymbol",
    "bm",
    "mathbb",
    "mathcal",
    "mathfrak",
    "overline",
    "underline",
    "vec",
    "hat",
    "bar",
    "widehat",
    "widetilde",
    "tilde",
    "overrightarrow",
    "overleftarrow",
    "dot",
    "ddot",
    "cancel",
    "bf",
    "rm",
    "it",
    "degree",
    "circ",
    "dollar",
    "ldots",
    "cdots",
    "dots",
    "centerdot",
    "noindent",
    "hfill",
    "medspace",
    "thinspace",
    "thickspace",
    "negthinspace",
    "Rightarrow",
    "rightarrow",
    "implies",
    "therefore",
    "Longrightarrow",
    "longrightarrow",
    "to",
    "iff",
    "because",
    "ensuremath",
    "protect",
    "mathop",
    "mathord",
];

/// Commands whose brace argument is skipped entirely.
const SKIP_ARG: &[&str] = &[
    "hspace",
    "vspace",
    "phantom",
    "hphantom",
    "vphantom",
    "label",
    "tag",
    "color",
    "textcolor",
];

/// Text-mode commands: their argument is prose unless it looks like math.
const TEXT_CMDS: &[&str] = &[
    "text",
    "textrm",
    "textnormal",
    "mbox",
    "textit",
    "textsf",
    "texttt",
    "textbf",
    "emph",
    "textup",
    "hbox",
];

/// Commands the parser understands (also used to recognise `\\cmd` and `\cmdx` run-ons).
const KNOWN: &[&str] = &[
    "frac",
    "dfrac",
    "tfrac",
    "cfrac",
    "sqrt",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "arsinh",
    "arcsinh",
    "asinh",
    "argsinh",
    "arcosh",
    "arccosh",
    "acosh",
    "argcosh",
    "artanh",
    "arctanh",
    "atanh",
    "argtanh",
    "lgroup",
    "rgroup",
    "llcorner",
    "lrcorner",
    "ulcorner",
    "urcorner",
    "exponentialE",
    "ln",
    "log",
    "lg",
    "exp",
    "binom",
    "dbinom",
    "tbinom",
    "choose",
    "gcd",
    "lcm",
    "min",
    "max",
    "mod",
    "bmod",
    "pmod",
    "pi",
    "infty",
    "infin",
    "cdot",
    "times",
    "ast",
    "div",
    "le",
    "leq",
    "leqslant",
    "leqq",
    "ge",
    "geq",
    "geqslant",
    "geqq",
    "ne",
    "neq",
    "lt",
    "gt",
    "approx",
    "simeq",
    "sim",
    "approxeq",
    "equiv",
    "pm",
    "mp",
    "in",
    "cup",
    "cap",
    "setminus",
    "lfloor",
    "rfloor",
    "lceil",
    "rceil",
    "lvert",
    "rvert",
    "vert",
    "mid",
    "Vert",
    "lVert",
    "rVert",
    "operatorname",
    "begin",
    "end",
    "emptyset",
    "varnothing",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Pi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
    "floor",
    "ceil",
    "lbrace",
    "rbrace",
    "langle",
    "rangle",
    "prime",
    "lbrack",
    "rbrack",
    "int",
    "iint",
    "oint",
    "sum",
    "prod",
    "lim",
    "variable",
];

fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
        || IGNORED.contains(&name)
        || TEXT_CMDS.contains(&name)
        || SKIP_ARG.contains(&name)
}

/// Tokenise `s`. One work unit per character.
pub fn lex(s: &str, budget: &mut Budget) -> Result<Vec<Tok>, LexError> {
    let chars: Vec<char> = s.chars().collect();
    let mut lx = Lexer {
        c: &chars,
        i: 0,
        rep_start: 0,
        out: Vec::new(),
        budget,
    };
    lx.run()?;
    Ok(lx.out)
}

#[derive(Debug, Clone, PartialEq)]
pub enum LexError {
    Budget,
}

impl From<Exhausted> for LexError {
    fn from(_: Exhausted) -> Self {
        LexError::Budget
    }
}

struct Lexer<'a, 'b> {
    c: &'a [char],
    i: usize,
    /// End of the plain digits of a number followed by a repeating part.
    rep_start: usize,
    out: Vec<Tok>,
    budget: &'b mut Budget,
}

impl Lexer<'_, '_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    fn run(&mut self) -> Result<(), LexError> {
        while let Some(c) = self.peek(0) {
            self.budget.spend(1)?;
            if c.is_whitespace() {
                self.i += 1;
            } else if c.is_ascii_digit()
                || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
            {
                self.number();
            } else if c.is_ascii_alphabetic() {
                self.word();
            } else if c == '\\' {
                self.command()?;
            } else {
                self.i += 1;
                self.symbol(c);
            }
        }
        Ok(())
    }

    fn number(&mut self) {
        let start = self.i;
        while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
            self.i += 1;
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
            self.i += 1;
            while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                self.i += 1;
            }
        }
        // Repeating decimals `0.\overline{3}`, `0.1\overline{6}` become `0.(3)`, `0.1(6)`.
        if let Some(rep) = self.overline_digits() {
            let mut text: String = self.c[start..self.rep_start].iter().collect();
            if !text.contains('.') {
                text.push('.');
            }
            self.out.push(Tok::Num(format!("{text}({rep})")));
            return;
        }
        // Scientific notation `1.5e3`, `2E-4` (an `e` not followed by digits is Euler's number).
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|d| d.is_ascii_digit())
                && !self.peek(2 + sign).is_some_and(|d| d.is_ascii_alphabetic())
            {
                self.i += 1 + sign;
                while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                    self.i += 1;
                }
            }
        }
        self.out
            .push(Tok::Num(self.c[start..self.i].iter().collect()));
    }

    /// After a number: `\overline{ddd}` or `.\overline{ddd}` → the repeating digits (consumed).
    fn overline_digits(&mut self) -> Option<String> {
        let mut j = self.i;
        if self.c.get(j) == Some(&'.') {
            j += 1;
        }
        let pat: Vec<char> = "\\overline{".chars().collect();
        if self.c.len() < j + pat.len() || self.c[j..j + pat.len()] != pat[..] {
            return None;
        }
        let digits_start = j + pat.len();
        let mut k = digits_start;
        while self.c.get(k).is_some_and(|d| d.is_ascii_digit()) {
            k += 1;
        }
        if k == digits_start || k - digits_start > 30 || self.c.get(k) != Some(&'}') {
            return None;
        }
        self.rep_start = self.i;
        self.i = k + 1;
        Some(self.c[digits_start..k].iter().collect())
    }

    fn word(&mut self) {
        let start = self.i;
        // Split camel-case run-ons such as `1orW(x)` into `or` + `W`.
        let mut prev_lower = false;
        while let Some(ch) = self.peek(0) {
            if !ch.is_ascii_alphabetic() || (prev_lower && ch.is_ascii_uppercase()) {
                break;
            }
            prev_lower = ch.is_ascii_lowercase();
            self.i += 1;
        }
        self.out
            .push(Tok::Word(self.c[start..self.i].iter().collect()));
    }

    fn read_letters(&mut self) -> String {
        let start = self.i;
        while self.peek(0).is_some_and(|ch| ch.is_ascii_alphabetic()) {
            self.i += 1;
        }
        self.c[start..self.i].iter().collect()
    }

    /// Reads a `{...}` group verbatim (brace matched, iterative). Returns None when absent.
    fn raw_group(&mut self) -> Option<String> {
        let mut j = self.i;
        while self.c.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        if self.c.get(j) != Some(&'{') {
            return None;
        }
        let mut depth = 0usize;
        let start = j + 1;
        while j < self.c.len() {
            match self.c[j] {
                '\\' => j += 1,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i = j + 1;
                        return Some(self.c[start..j].iter().collect());
                    }
                }
                _ => {}
            }
            j += 1;
        }
        // Unclosed: take the rest.
        self.i = self.c.len();
        Some(self.c[start.min(self.c.len())..].iter().collect())
    }

    fn command(&mut self) -> Result<(), LexError> {
        self.i += 1; // backslash
        let Some(next) = self.peek(0) else {
            return Ok(());
        };
        if next == '\\' {
            // `\\name` from doubly escaped text is a command; otherwise a row separator.
            let save = self.i;
            self.i += 1;
            let name = self.read_letters();
            if !name.is_empty() && (is_known(&name) || known_prefix(&name).is_some()) {
                return self.named(name);
            }
            self.i = save + 1;
            self.out.push(Tok::RowSep);
            return Ok(());
        }
        if next.is_ascii_alphabetic() {
            let name = self.read_letters();
            return self.named(name);
        }
        self.i += 1;
        match next {
            '{' => self.out.push(Tok::SetOpen),
            '}' => self.out.push(Tok::SetClose),
            '%' => self.out.push(Tok::Ch('%')),
            '|' => self.out.push(Tok::Ch('|')),
            '_' => self.out.push(Tok::Ch('_')),
            // `\$`, `\,`, `\;`, `\:`, `\!`, `\ `, `\(`, `\)`, `\[`, `\]`, `\&`: presentation only.
            _ => {}
        }
        Ok(())
    }

    fn named(&mut self, name: String) -> Result<(), LexError> {
        if !is_known(&name) {
            // `\quadx` is `\quad x`; `\pix` is `\pi x`.
            if let Some(prefix) = known_prefix(&name) {
                let rest_len = name.len() - prefix.len();
                self.i -= rest_len;
                return self.named(prefix.to_string());
            }
            self.out.push(Tok::Cmd(name));
            return Ok(());
        }
        let n = name.as_str();
        if IGNORED.contains(&n) {
            if matches!(
                n,
                "left" | "right" | "mleft" | "mright" | "bigl" | "bigr" | "Bigl" | "Bigr"
            ) && self.peek(0) == Some('.')
            {
                self.i += 1;
            }
            return Ok(());
        }
        if SKIP_ARG.contains(&n) {
            self.raw_group();
            if n == "textcolor" {
                // `\textcolor{red}{x}`: keep the second group as ordinary tokens.
            }
            return Ok(());
        }
        if TEXT_CMDS.contains(&n) {
            let content = self.raw_group().unwrap_or_default();
            self.text(content)?;
            return Ok(());
        }
        let tok = match n {
            "dfrac" | "tfrac" | "cfrac" | "frac" => Tok::Cmd("frac".into()),
            "dbinom" | "tbinom" | "binom" => Tok::Cmd("binom".into()),
            "cdot" | "times" | "ast" => Tok::Ch('*'),
            "div" => Tok::Ch('/'),
            "le" | "leq" | "leqslant" | "leqq" => Tok::Le,
            "ge" | "geq" | "geqslant" | "geqq" => Tok::Ge,
            "ne" | "neq" => Tok::Ne,
            "lt" => Tok::Ch('<'),
            "gt" => Tok::Ch('>'),
            "approx" | "simeq" | "sim" | "approxeq" => Tok::Approx,
            "equiv" => Tok::Ch('='),
            "pm" => Tok::Pm,
            "mp" => Tok::Mp,
            "in" => Tok::In,
            "cup" => Tok::Cup,
            "cap" => Tok::Cap,
            "setminus" => Tok::Setminus,
            "lfloor" | "llcorner" => Tok::Lfloor,
            "rfloor" | "lrcorner" => Tok::Rfloor,
            "lceil" | "ulcorner" => Tok::Lceil,
            "rceil" | "urcorner" => Tok::Rceil,
            "exponentialE" => Tok::Word("e".into()),
            "lvert" | "rvert" | "vert" | "mid" | "Vert" | "lVert" | "rVert" => Tok::Ch('|'),
            "lbrace" => Tok::SetOpen,
            "rbrace" => Tok::SetClose,
            "lbrack" => Tok::Ch('['),
            "rbrack" => Tok::Ch(']'),
            "variable" => Tok::Var(self.raw_group().unwrap_or_default().trim().to_string()),
            "langle" | "lgroup" => Tok::Ch('('),
            "rgroup" => Tok::Ch(')'),
            "rangle" => Tok::Ch(')'),
            "prime" => Tok::Ch('\''),
            "infin" => Tok::Cmd("infty".into()),
            "bmod" => Tok::Cmd("mod".into()),
            "operatorname" => {
                let content = self.raw_group().unwrap_or_default();
                let content = content.trim();
                Tok::Cmd(content.trim_start_matches('\\').to_string())
            }
            "begin" | "end" => {
                let env = self
                    .raw_group()
                    .unwrap_or_default()
                    .trim()
                    .trim_end_matches('*')
                    .to_string();
                if n == "begin" && env == "array" {
                    self.raw_group(); // column specification
                }
                if n == "begin" {
                    Tok::Begin(env)
                } else {
                    Tok::End(env)
                }
            }
            _ => Tok::Cmd(name.clone()),
        };
        self.out.push(tok);
        Ok(())
    }

    /// `\text{...}`: connectives become words, short math-like content is re-read as math,
    /// anything else is prose.
    fn text(&mut self, content: String) -> Result<(), LexError> {
        let t = content.trim();
        if t.is_empty() {
            return Ok(());
        }
        let lower = t.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "and" | "or" | "," | ";" | "percent" | "percentage" | "pct"
        ) {
            self.out.push(Tok::Word(lower));
            return Ok(());
        }
        let long_word = t
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|w| w.len() >= 2 && crate::lexer::word_is_prose(w));
        if long_word || t.chars().any(|c| !c.is_ascii() && c.is_alphabetic()) {
            self.out.push(Tok::Text(t.to_string()));
            return Ok(());
        }
        let inner = lex(t, self.budget)?;
        self.out.extend(inner);
        Ok(())
    }

    /// After `^`: is the exponent a degree sign (`^\circ`, `^{\circ}`)? If so it is consumed.
    fn degree_follows(&mut self) -> bool {
        let rest: String = self.c[self.i..self.c.len().min(self.i + 12)]
            .iter()
            .filter(|c| !c.is_whitespace())
            .collect();
        for pat in ["{\\circ}", "\\circ", "{\\degree}", "\\degree"] {
            if rest.starts_with(pat) {
                // consume the pattern, skipping whitespace inside it
                let mut need = pat.chars().count();
                while need > 0 {
                    if !self.c[self.i].is_whitespace() {
                        need -= 1;
                    }
                    self.i += 1;
                }
                return true;
            }
        }
        false
    }

    fn symbol(&mut self, c: char) {
        let tok = match c {
            '<' if self.peek(0) == Some('=') => {
                self.i += 1;
                Tok::Le
            }
            '>' if self.peek(0) == Some('=') => {
                self.i += 1;
                Tok::Ge
            }
            '!' if self.peek(0) == Some('=') => {
                self.i += 1;
                Tok::Ne
            }
            '=' => {
                if self.peek(0) == Some('=') {
                    self.i += 1;
                }
                Tok::Ch('=')
            }
            '^' if self.degree_follows() => return,
            '*' if self.peek(0) == Some('*') => {
                self.i += 1;
                Tok::Ch('^')
            }
            '+' | '-' | '*' | '/' | '^' | '_' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';'
            | '|' | '<' | '>' | '!' | '&' | ':' | '%' | '\'' => Tok::Ch(c),
            '≤' | '⩽' => Tok::Le,
            '≥' | '⩾' => Tok::Ge,
            '≠' => Tok::Ne,
            '±' => Tok::Pm,
            '∓' => Tok::Mp,
            '≈' => Tok::Approx,
            '∈' => Tok::In,
            '∪' => Tok::Cup,
            '∩' => Tok::Cap,
            '∖' => Tok::Setminus,
            '×' | '·' | '⋅' | '∙' => Tok::Ch('*'),
            '−' | '–' | '—' => Tok::Ch('-'),
            '÷' => Tok::Ch('/'),
            'π' => Tok::Cmd("pi".into()),
            '∅' => Tok::Cmd("emptyset".into()),
            '∞' => Tok::Cmd("infty".into()),
            '√' => Tok::Cmd("sqrt".into()),
            '²' => {
                self.out.push(Tok::Ch('^'));
                Tok::Num("2".into())
            }
            '³' => {
                self.out.push(Tok::Ch('^'));
                Tok::Num("3".into())
            }
            // Degree signs, currency symbols, `$` and anything unknown carry no value.
            _ => return,
        };
        self.out.push(tok);
    }
}

/// Longest known command that is a proper prefix of `name` (for run-ons like `\quadx`).
fn known_prefix(name: &str) -> Option<&'static str> {
    let mut best: Option<&'static str> = None;
    for k in KNOWN.iter().chain(IGNORED).chain(TEXT_CMDS) {
        if k.len() >= 2
            && name.len() > k.len()
            && name.starts_with(k)
            && best.is_none_or(|b| k.len() > b.len())
        {
            best = Some(k);
        }
    }
    best
}

/// Words that are never read as products of single-letter variables.
pub fn word_is_prose(w: &str) -> bool {
    let lower = w.to_ascii_lowercase();
    if Func::from_name(&lower).is_some()
        || matches!(lower.as_str(), "pi" | "sqrt" | "mod" | "frac")
        || crate::parser::number_word(&lower).is_some()
    {
        return false;
    }
    w.len() >= 4 || STOP_WORDS.contains(&lower.as_str())
}

use crate::ast::Func;

/// Short words and unit names that are prose rather than products of variables.
pub const STOP_WORDS: &[&str] = &[
    "and", "or", "is", "the", "of", "to", "in", "it", "be", "we", "so", "as", "at", "by", "if",
    "on", "an", "are", "was", "not", "but", "for", "its", "all", "any", "our", "has", "let", "yes",
    "no", "cm", "mm", "km", "kg", "mg", "ml", "ft", "hr", "hrs", "sec", "mph", "kph", "lb", "lbs",
    "oz", "yd", "yds", "mi", "cents", "day", "days", "men", "way", "ways", "per", "sq", "cu",
    "deg", "rad", "am", "pm", "th", "st", "nd", "rd", "max", "min", "one", "two", "six", "ten",
    "see", "get", "use", "can", "may", "has", "had", "yuan", "usd", "eur", "cent", "unit", "m",
    "units",
];
