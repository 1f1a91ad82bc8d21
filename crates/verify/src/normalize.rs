//! String-level clean-up of an extracted answer before parsing: delimiters, digit grouping and
//! decimal commas. Everything else (spacing commands, `\dfrac`, `\left`, units in `\text`) is
//! handled by the lexer and parser.

/// Normalised readings of an answer. The first is preferred; a second reading exists when the
/// text is ambiguous (a lone `1,5` may be a decimal comma or a two-element list; golds use
/// decimal commas too, so both sides get both readings).
pub fn readings(answer: &str) -> Vec<String> {
    let s = strip_wrappers(answer);
    let s = join_digit_groups(&s);
    let s = drop_thousands_commas(&s);
    let s = join_space_thousands(&s);
    let s = compound_number_words(&s);
    let mut out = Vec::with_capacity(2);
    if let Some(dec) = decimal_comma(&s) {
        out.push(dec);
    }
    out.push(s);
    out
}

/// Removes surrounding math delimiters, trailing punctuation and whitespace.
pub fn strip_wrappers(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let before = t.len();
        for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
            if t.len() >= open.len() + close.len() && t.starts_with(open) && t.ends_with(close) {
                t = t[open.len()..t.len() - close.len()].trim();
            }
        }
        t = t.trim_end_matches(['.', ';']).trim();
        if let Some(x) = t.strip_suffix("\\\\") {
            t = x.trim();
        }
        if t.len() == before {
            break;
        }
    }
    t.to_string()
}

fn is_digit(c: Option<&u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_digit())
}

/// `1{,}000`, `14 {, }916` and `32,\!349` → digits joined.
fn join_digit_groups(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if i > 0 && b[i - 1].is_ascii_digit() {
            // Try to match an explicit group separator followed by a digit.
            let mut j = i;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            let sep_end = if b[j..].starts_with(b"{") {
                let mut k = j + 1;
                while k < b.len() && b[k] == b' ' {
                    k += 1;
                }
                if k < b.len() && b[k] == b',' {
                    k += 1;
                    while k < b.len() && b[k] == b' ' {
                        k += 1;
                    }
                    (k < b.len() && b[k] == b'}').then_some(k + 1)
                } else {
                    None
                }
            } else if b[j..].starts_with(b",\\!") {
                Some(j + 3)
            } else if (b[j..].starts_with(b"\\,")
                || b[j..].starts_with(b"\\!")
                || b[j..].starts_with(b"\\ "))
                && b.get(j + 2..j + 5)
                    .is_some_and(|g| g.iter().all(|d| d.is_ascii_digit()))
                && !is_digit(b.get(j + 5))
            {
                // `1\,000`: a thin space between digit groups.
                Some(j + 2)
            } else {
                None
            };
            if let Some(mut e) = sep_end {
                while e < b.len() && (b[e] == b' ' || b[e..].starts_with(b"\\!")) {
                    e += if b[e] == b' ' { 1 } else { 2 };
                }
                if is_digit(b.get(e)) {
                    i = e;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `1,000,000.5` → `1000000.5`, at bracket depth 0 only (inside `(1,500)` it is a tuple).
fn drop_thousands_commas(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut depth = 0i32;
    // Brackets opened as the argument list of a function of several arguments: commas there
    // separate arguments (`\gcd(6,321,429)` has three).
    let mut call_stack: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                call_stack.push(c == b'(' && ends_with_multi_arg_function(&s[..i]));
            }
            b')' | b']' | b'}' => {
                depth -= 1;
                call_stack.pop();
            }
            _ => {}
        }
        let in_call = call_stack.last() == Some(&true);
        let starts_number = c.is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.' || b[i - 1] == b','));
        if starts_number {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let lead = j - i;
            let mut groups = 0;
            let mut k = j;
            while k + 3 < b.len()
                && b[k] == b','
                && b[k + 1..k + 4].iter().all(|d| d.is_ascii_digit())
                && !is_digit(b.get(k + 4))
            {
                groups += 1;
                k += 4;
            }
            let lead_ok = (1..=3).contains(&lead) && b[i] != b'0';
            // Inside brackets `(2,251,252)` is a tuple, not a number.
            if groups > 0 && lead_ok && !in_call && depth == 0 {
                for &d in &b[i..k] {
                    if d != b',' {
                        out.push(d as char);
                    }
                }
                i = k;
                continue;
            }
            out.push_str(&s[i..j]);
            i = j;
            continue;
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn ends_with_multi_arg_function(before: &str) -> bool {
    let t = before.trim_end();
    let t = t.strip_suffix("\\left").unwrap_or(t).trim_end();
    let t = t.strip_suffix('}').unwrap_or(t);
    ["gcd", "lcm", "max", "min", "binom"]
        .iter()
        .any(|f| t.ends_with(f))
}

/// `1 000` and `12 000 023` (the whole answer only) → digits joined.
fn join_space_thousands(s: &str) -> String {
    let parts: Vec<&str> = s.split(' ').collect();
    if parts.len() >= 2
        && (1..=3).contains(&parts[0].len())
        && parts[0].bytes().all(|c| c.is_ascii_digit())
        && parts[1..].iter().enumerate().all(|(k, p)| {
            let digits = p.split('.').next().unwrap();
            digits.len() == 3
                && digits.bytes().all(|c| c.is_ascii_digit())
                && (k == parts.len() - 2 || !p.contains('.'))
                && p.split('.')
                    .nth(1)
                    .is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))
        })
    {
        return parts.concat();
    }
    s.to_string()
}

/// A whole answer `-12,5` (one comma, digits on both sides, not a thousands group) read with a
/// decimal comma.
fn decimal_comma(s: &str) -> Option<String> {
    let t = s.strip_prefix('-').unwrap_or(s);
    let (a, b) = t.split_once(',')?;
    if a.is_empty()
        || b.is_empty()
        || !a.bytes().all(|c| c.is_ascii_digit())
        || !b.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let thousands_like = b.len() == 3 && !a.starts_with('0') && a.len() <= 3;
    if thousands_like {
        return None;
    }
    Some(format!(
        "{}{a}.{b}",
        if s.starts_with('-') { "-" } else { "" }
    ))
}

/// Loose textual form for last-resort comparison of answers that do not parse: spacing and
/// sizing commands dropped, fraction spellings unified, whitespace removed.
pub fn loose_text(s: &str) -> String {
    let s = strip_wrappers(s)
        .replace("\\left", "")
        .replace("\\right", "")
        .replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac")
        .replace("\\!", "")
        .replace("\\,", "")
        .replace("\\;", "")
        .replace("\\displaystyle", "")
        .replace("\\textstyle", "");
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// `twenty-five` / `twenty five` → `25` (the parser reads single number words itself).
fn compound_number_words(s: &str) -> String {
    if !s.bytes().any(|b| b == b'-' || b == b' ') || !s.bytes().any(|b| b.is_ascii_alphabetic()) {
        return s.to_string();
    }
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(['-', ' ']).filter(|w| !w.is_empty()).collect();
    if words.len() == 2 {
        if let (Some(t), Some(u)) = (
            crate::parser::number_word(words[0]),
            crate::parser::number_word(words[1]),
        ) {
            if (20..=90).contains(&t) && t % 10 == 0 && (1..=9).contains(&u) {
                return (t + u).to_string();
            }
        }
    }
    s.to_string()
}

/// A numeral written with its base, `4210_{5}`, `4210_5`, `\\text{A3}_{16}`, `1011_{(2)}`, from
/// its loose text: (digits with sign, radix). Every digit must be valid in the base.
pub fn base_numeral(loose: &str) -> Option<(String, u32)> {
    let (digits, radix) = loose.rsplit_once('_')?;
    let radix = radix.trim_matches(['{', '}', '(', ')']);
    let radix: u32 = radix.parse().ok().filter(|r| (2..=36).contains(r))?;
    let mut d = digits;
    for wrap in ["\\text{", "\\mathrm{", "{"] {
        if let Some(inner) = d.strip_prefix(wrap).and_then(|x| x.strip_suffix('}')) {
            d = inner;
        }
    }
    let (sign, body) = match d.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", d),
    };
    let valid = !body.is_empty()
        && body
            .chars()
            .all(|c| c.to_digit(36).is_some_and(|v| v < radix));
    valid.then(|| (format!("{sign}{body}"), radix))
}
