//! Finding the final answer in a model response (or in a gold solution).
//!
//! Order of preference (see the crate docs for the policy):
//! 1. the answer after `</think>` when a think block is closed (else the whole text);
//! 2. whichever comes last of the last `\boxed{}`/`\fbox{}` (adjacent boxes separated only by
//!    commas, "and", `\quad`, labels like `y_2 =` are joined) and "final answer is/:" phrases;
//! 3. "the answer is X" / "answer: X";
//! 4. the whole text, when it is a bare answer rather than prose;
//! 5. the last LaTeX math segment (`$..$`, `$$..$$`, `\(..\)`, `\[..\]`, joined like boxes) in
//!    the final paragraph, code blocks removed;
//! 6. the last number of the final sentence;
//! 7. optionally (`last_number_fallback`), the last number anywhere.
//!
//! Every scan is a single left-to-right pass or a bounded backwards walk: linear in the input.

use crate::CheckerOptions;

/// Largest tail of the final paragraph searched for math segments.
const MATH_WINDOW: usize = 16 * 1024;

const SPECIAL_TOKENS: &[&str] = &[
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<｜end▁of▁sentence｜>",
];

/// Extracts the final answer from a response. None when no answer can be found.
pub fn extract_answer(text: &str, opts: &CheckerOptions) -> Option<String> {
    let text = cut_special_tokens(text);
    if let Some(pos) = text.rfind("</think>") {
        let after = &text[pos + "</think>".len()..];
        if let Some(a) = extract_plain(after, opts, Kind::Prediction) {
            return Some(a);
        }
    } else if text.contains("<think>") {
        // The model never left its reasoning (cut at the token limit): whatever it boxed
        // there is a draft, not an answer.
        return None;
    }
    let text = text.strip_prefix("<think>").unwrap_or(text);
    extract_plain(text, opts, Kind::Prediction)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prediction,
    Gold,
}

/// The answer of a gold solution. Golds are trusted text, not generations that may have been
/// cut off: a box missing its closing brace (a typo in the data) still holds the answer.
pub fn extract_gold(text: &str, opts: &CheckerOptions) -> Option<String> {
    let text = cut_special_tokens(text);
    let text = match text.rfind("</think>") {
        Some(p) => &text[p + "</think>".len()..],
        None => text.strip_prefix("<think>").unwrap_or(text),
    };
    extract_plain(text, opts, Kind::Gold)
}

/// The text up to the start of an unfinished trailing fragment: a `\boxed{`, `$`, `$$`, `\(`
/// or `\[` opened and never closed (a response cut at the token limit mid-formula). Nothing
/// read from such a fragment is an answer (`... of $555_{` does not answer "555").
pub fn complete_prefix(text: &str) -> &str {
    let b = text.as_bytes();
    let mut cut = text.len();
    // Unclosed box: the first one whose brace group never closes.
    for bx in find_boxes_raw(text) {
        if !bx.closed {
            cut = cut.min(bx.start);
            break;
        }
    }
    // Unclosed math delimiter, scanning left to right like `math_segments`.
    let mut i = 0;
    while i < cut {
        let (open, close): (&str, &str) = if b[i..].starts_with(b"$$") {
            ("$$", "$$")
        } else if b[i] == b'$' {
            ("$", "$")
        } else if b[i..].starts_with(b"\\(") {
            ("\\(", "\\)")
        } else if b[i..].starts_with(b"\\[") {
            ("\\[", "\\]")
        } else if b[i] == b'\\' {
            i += 2;
            continue;
        } else {
            i += 1;
            continue;
        };
        let inner = i + open.len();
        match find_unescaped(&text[inner.min(text.len())..], close) {
            Some(rel) => i = inner + rel + close.len(),
            None => {
                // A lone `$` is more often a currency sign; it opens a cut-off formula when what
                // follows it stops mid-expression (an open brace, a dangling operator).
                let tail = &text[inner.min(text.len())..];
                if open != "$" || ends_mid_expression(tail) {
                    cut = cut.min(i);
                }
                break;
            }
        }
    }
    &text[..cut]
}

fn extract_plain(text: &str, opts: &CheckerOptions, kind: Kind) -> Option<String> {
    let gold = kind == Kind::Gold;
    let full_len = text.len();
    let text = if gold { text } else { complete_prefix(text) };
    // What is left of a cut-off response is the lead-in to the missing answer ("thus"),
    // never a bare answer itself.
    let truncated = text.len() < full_len;
    if !opts.choices.is_empty() {
        if let Some(c) = last_choice(text, &opts.choices) {
            return Some(c);
        }
    }
    if opts.boxed_only {
        return last_boxed_only(text);
    }
    let boxes = if gold {
        find_boxes_raw(text).into_iter().map(|b| b.boxed).collect()
    } else {
        find_boxes(text)
    };
    let phrase = last_phrase(text, &["final answer"]);
    let box_pos = boxes.last().map(|b| b.start);
    match (box_pos, &phrase) {
        (Some(bp), Some((pp, content))) if *pp > bp => return Some(content.clone()),
        (Some(_), _) => return Some(join_boxes(text, &boxes)),
        (None, Some((_, content))) => return Some(content.clone()),
        (None, None) => {}
    }
    if let Some((_, content)) = last_phrase(text, &["answer is", "answer:", "answer is:"]) {
        return Some(content);
    }
    let body = strip_code_blocks(text);
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    let has_delims =
        find_unescaped(body, "$").is_some() || body.contains("\\(") || body.contains("\\[");
    // A one-line gold without delimiters is the answer as written, even a sentence
    // ("f(x)=ax+b, where b is an arbitrary integer").
    if !has_delims && !truncated && (gold || !is_prose(body)) && !body.contains('\n') {
        return Some(body.to_string());
    }
    // Only the final paragraph matters; scanning at most its last MATH_WINDOW bytes keeps huge
    // inputs cheap (the window starts at a line break when one exists, to keep `$` pairs intact).
    let mut para_start = body.rfind("\n\n").map(|p| p + 2).unwrap_or(0);
    if body.len() - para_start > MATH_WINDOW {
        let mut w = body.len() - MATH_WINDOW;
        while !body.is_char_boundary(w) {
            w += 1;
        }
        para_start = body[w..].find('\n').map(|p| w + p + 1).unwrap_or(w);
    }
    let para = &body[para_start..];
    let segs = math_segments(para);
    if let Some(last) = segs.last() {
        // "... $$\frac{x'}{x} \geq 2.$$ Therefore, the error increases by 100%.": a concluding
        // sentence after the last formula states the answer.
        if let Some(n) = concluding_number(&para[last.end..]) {
            return Some(n);
        }
        return Some(join_segments(para, &segs));
    }
    if let Some(n) = tail_number(body) {
        return Some(n);
    }
    if opts.last_number_fallback {
        return last_number(text);
    }
    None
}

fn cut_special_tokens(text: &str) -> &str {
    let mut end = text.len();
    for t in SPECIAL_TOKENS {
        if let Some(p) = text.find(t) {
            if p > 0 {
                end = end.min(p);
            }
        }
    }
    &text[..end]
}

/// A `\boxed{...}` occurrence: byte range in the text and its content.
#[derive(Debug, Clone)]
pub struct Boxed {
    pub start: usize,
    pub end: usize,
    pub content: String,
}

/// Whether `s` stops inside an expression: more `{` than `}`, or a trailing operator, script
/// mark or command.
fn ends_mid_expression(s: &str) -> bool {
    let opens = s.bytes().filter(|&c| c == b'{').count();
    let closes = s.bytes().filter(|&c| c == b'}').count();
    let t = s.trim_end();
    opens > closes
        || t.ends_with(['{', '^', '_', '\\', '+', '-', '=', '(', '[', ','])
        || t.rsplit('\\').next().is_some_and(|cmd| {
            t.contains('\\') && !cmd.is_empty() && cmd.bytes().all(|c| c.is_ascii_alphabetic())
        })
}

/// All complete top-level `\boxed`/`\fbox` occurrences (nested boxes are inside their
/// parent's content). A box whose brace never closes is not an answer.
pub fn find_boxes(text: &str) -> Vec<Boxed> {
    find_boxes_raw(text)
        .into_iter()
        .filter(|b| b.closed)
        .map(|b| b.boxed)
        .collect()
}

struct RawBox {
    start: usize,
    closed: bool,
    boxed: Boxed,
}

fn find_boxes_raw(text: &str) -> Vec<RawBox> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // Skip runs of backslashes (doubly escaped `\\boxed`).
        let start = i;
        while i < b.len() && b[i] == b'\\' {
            i += 1;
        }
        let name_len = if b[i..].starts_with(b"boxed") {
            5
        } else if b[i..].starts_with(b"fbox") {
            4
        } else {
            continue;
        };
        let mut j = i + name_len;
        if j < b.len() && b[j].is_ascii_alphabetic() {
            i = j;
            continue;
        }
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'{' {
            let (content_end, close) = match_brace(b, j);
            let closed = content_end < b.len();
            let content = text[j + 1..content_end].trim().to_string();
            out.push(RawBox {
                start,
                closed,
                boxed: Boxed {
                    start,
                    end: close,
                    content,
                },
            });
            i = close;
        } else {
            // `\boxed 5`: the next space-delimited token.
            let s = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'$' {
                j += 1;
            }
            let content = text[s..j].trim_end_matches(['.', ',']).to_string();
            if !content.is_empty() {
                out.push(RawBox {
                    start,
                    closed: true,
                    boxed: Boxed {
                        start,
                        end: j,
                        content,
                    },
                });
            }
            i = j.max(i + 1);
        }
    }
    out
}

/// Given `b[open] == '{'`, returns (end of content, index after the closing brace); an unclosed
/// group runs to the end of the text (content end == text length marks it unclosed).
fn match_brace(b: &[u8], open: usize) -> (usize, usize) {
    let mut depth = 0usize;
    let mut k = open;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return (k, k + 1);
                }
            }
            _ => {}
        }
        k += 1;
    }
    (b.len(), b.len())
}

/// Content of the last `\boxed{}` / `\fbox{}` only: the strict extraction used for training
/// rewards (answers outside a box earn nothing).
pub fn last_boxed_only(text: &str) -> Option<String> {
    let text = cut_special_tokens(text);
    let text = match text.rfind("</think>") {
        Some(p) => &text[p + "</think>".len()..],
        None => text,
    };
    find_boxes(text)
        .pop()
        .map(|b| b.content)
        .filter(|c| !c.is_empty())
}

fn join_boxes(text: &str, boxes: &[Boxed]) -> String {
    let mut k = boxes.len() - 1;
    while k > 0 && boxes.len() - k < 16 && {
        let gap = &text[boxes[k - 1].end..boxes[k].start];
        is_separator_gap(gap) || is_part_label_gap(gap)
    } {
        k -= 1;
    }
    // The same answer boxed twice (restated at the end) is one answer.
    let mut parts: Vec<&str> = Vec::new();
    for b in &boxes[k..] {
        if !parts
            .iter()
            .any(|p| crate::normalize::loose_text(p) == crate::normalize::loose_text(&b.content))
        {
            parts.push(b.content.as_str());
        }
    }
    parts.join(", ")
}

/// A short stretch of prose inside one paragraph between two boxes ("for part (a), and for
/// part (b)"): the boxes answer parts of one question and are read together. Two different
/// boxes read together never match a single gold value, so a hedge ("\\boxed{3}, or maybe
/// \\boxed{5}") still earns nothing.
fn is_part_label_gap(gap: &str) -> bool {
    gap.len() <= 100 && !gap.contains("\n\n") && !gap.contains('=')
}

/// Whether the text between two answers only separates them (commas, "and", spacing, math
/// delimiters, labels like `y_2 =`).
fn is_separator_gap(gap: &str) -> bool {
    if gap.len() > 80 {
        return false;
    }
    const TOKENS: &[&str] = &[
        "\\text{and}",
        "\\text{ and }",
        "\\text{or}",
        "\\text{ or }",
        "\\mbox{and}",
        "\\mbox{ and }",
        "\\qquad",
        "\\quad",
        "\\(",
        "\\)",
        "\\[",
        "\\]",
        "\\,",
        "\\;",
        "\\ ",
        "\\\\",
        "and",
        "or",
        "$",
    ];
    let b = gap.as_bytes();
    let mut i = 0;
    'outer: while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() || matches!(c, b',' | b';' | b'&') {
            i += 1;
            continue;
        }
        for t in TOKENS {
            if b[i..].starts_with(t.as_bytes()) {
                i += t.len();
                continue 'outer;
            }
        }
        // Label: a letter, optional subscript, then `=`.
        if c.is_ascii_alphabetic() {
            let mut j = i + 1;
            if j < b.len() && b[j] == b'_' {
                j += 1;
                if j < b.len() && b[j] == b'{' {
                    while j < b.len() && b[j] != b'}' {
                        j += 1;
                    }
                    j += 1;
                } else {
                    j += 1;
                }
            }
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            if j < b.len() && b[j] == b'=' {
                i = j + 1;
                continue;
            }
        }
        return false;
    }
    true
}

/// Last occurrence (case-insensitive) of any phrase; returns its position and the answer after it.
fn last_phrase(text: &str, phrases: &[&str]) -> Option<(usize, String)> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<(usize, usize)> = None;
    for p in phrases {
        if let Some(pos) = lower.rfind(p) {
            if best.is_none_or(|(b, _)| pos > b) {
                best = Some((pos, p.len()));
            }
        }
    }
    // Try from the last occurrence backwards until one yields content.
    let (pos, len) = best?;
    let content = phrase_content(&text[pos + len..])?;
    Some((pos, content))
}

/// The answer that follows "final answer is", "answer:" etc.
fn phrase_content(rest: &str) -> Option<String> {
    let mut r = rest;
    loop {
        let before = r.len();
        r = r.trim_start();
        for pre in ["**", ":", "is", "would be", "="] {
            if r.to_ascii_lowercase().starts_with(pre)
                && !(pre == "is" && r[2..].starts_with(|c: char| c.is_ascii_alphabetic()))
            {
                r = &r[pre.len()..];
            }
        }
        if r.len() == before {
            break;
        }
    }
    let r = r.trim_start();
    // Several math segments in a row ("$69$, $84$") form one list answer.
    if r.starts_with('$') || r.starts_with("\\(") || r.starts_with("\\[") {
        let line = &r[..r.find('\n').unwrap_or(r.len())];
        let segs = math_segments(line);
        if segs.len() > 1 && segs[0].start == 0 {
            let mut k = 1;
            while k < segs.len() && is_separator_gap(&line[segs[k - 1].end..segs[k].start]) {
                k += 1;
            }
            return Some(
                segs[..k]
                    .iter()
                    .map(|s| s.content.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
    }
    for (open, close) in [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")] {
        if let Some(inner) = r.strip_prefix(open) {
            let line_end = inner.find('\n').unwrap_or(inner.len());
            if let Some(end) = find_unescaped(inner, close) {
                if end <= line_end || open != "$" {
                    let c = inner[..end].trim();
                    return (!c.is_empty()).then(|| c.to_string());
                }
            }
            break;
        }
    }
    if r.starts_with("\\boxed") || r.starts_with("\\fbox") {
        return find_boxes(r).first().map(|b| b.content.clone());
    }
    // Plain text: up to the end of the line, the sentence, or "I hope".
    let mut end = r.find('\n').unwrap_or(r.len());
    if let Some(p) = r[..end].find("I hope") {
        end = p;
    }
    let line = &r[..end];
    let sentence_end = sentence_end(line).unwrap_or(line.len());
    let c = line[..sentence_end]
        .trim()
        .trim_end_matches(['.', ',', ';'])
        .trim()
        .trim_matches('*')
        .trim();
    if c.is_empty() {
        return None;
    }
    if is_prose(c) {
        // "is 5 because we add 2 and 3": the value right after the phrase; "the number of
        // ways, which is 12": the value closing the sentence.
        return leading_number(c).or_else(|| tail_number(c));
    }
    Some(c.to_string())
}

/// A number at the very start of `s`, followed by a space or the end.
fn leading_number(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let start_digits = i;
    while i < b.len()
        && (b[i].is_ascii_digit()
            || (matches!(b[i], b'.' | b',' | b'/') && i + 1 < b.len() && b[i + 1].is_ascii_digit()))
    {
        i += 1;
    }
    (i > start_digits && (i == b.len() || b[i] == b' ')).then(|| s[..i].to_string())
}

/// Byte index of the first ". " / "! " / "? " that ends a sentence (not a decimal point).
fn sentence_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| {
        matches!(b[i], b'.' | b'!' | b'?') && b.get(i + 1).is_some_and(|c| c.is_ascii_whitespace())
    })
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let b = s.as_bytes();
    let p = pat.as_bytes();
    let mut i = 0;
    while i + p.len() <= b.len() {
        if b[i] == b'\\' && pat == "$" {
            i += 2;
            continue;
        }
        if b[i..].starts_with(p) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A LaTeX math segment: byte range and content.
#[derive(Debug, Clone)]
struct Segment {
    start: usize,
    end: usize,
    content: String,
}

/// Complete math segments, left to right. `\$` is an escaped dollar, not a delimiter.
fn math_segments(text: &str) -> Vec<Segment> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (open, close): (&str, &str) = if b[i..].starts_with(b"$$") {
            ("$$", "$$")
        } else if b[i] == b'$' {
            ("$", "$")
        } else if b[i..].starts_with(b"\\(") {
            ("\\(", "\\)")
        } else if b[i..].starts_with(b"\\[") {
            ("\\[", "\\]")
        } else if b[i] == b'\\' {
            i += 2;
            continue;
        } else {
            i += 1;
            continue;
        };
        let inner_start = i + open.len();
        match find_unescaped(&text[inner_start..], close) {
            Some(rel) => {
                let end = inner_start + rel + close.len();
                let content = text[inner_start..inner_start + rel].trim().to_string();
                if !content.is_empty() {
                    out.push(Segment {
                        start: i,
                        end,
                        content,
                    });
                }
                i = end;
            }
            None => i = inner_start,
        }
    }
    out
}

fn join_segments(text: &str, segs: &[Segment]) -> String {
    let mut k = segs.len() - 1;
    while k > 0 && segs.len() - k < 16 && is_separator_gap(&text[segs[k - 1].end..segs[k].start]) {
        k -= 1;
    }
    segs[k..]
        .iter()
        .map(|s| s.content.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes fenced code blocks (an unclosed fence runs to the end).
fn strip_code_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find("```") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 3..];
        match after.find("```") {
            Some(q) => rest = &after[q + 3..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Prose has at least three words (letter runs of length ≥ 2 that are not LaTeX commands or
/// function names). Words inside `\text{...}`/`\mbox{...}` belong to a text answer, not prose.
pub fn is_prose(s: &str) -> bool {
    let b = s.as_bytes();
    let mut words = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && (b[i..].starts_with(b"\\text{") || b[i..].starts_with(b"\\mbox{")) {
            let open = i + 5; // the brace after the 4-letter command name
            i = match_brace(b, open).1;
            continue;
        }
        if b[i].is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            // Commands and environment names (`\\begin{pmatrix}`) are not words.
            let is_cmd = (start > 0 && b[start - 1] == b'\\')
                || s[..start].ends_with("\\begin{")
                || s[..start].ends_with("\\end{");
            let w = &s[start..i];
            if !is_cmd && w.len() >= 2 && crate::lexer::word_is_prose(w) {
                words += 1;
                if words >= 3 {
                    return true;
                }
            }
        } else {
            i += 1;
        }
    }
    false
}

/// A final sentence that concludes ("Therefore ...", "Thus", "So", "Hence") and ends with a
/// number (optionally a percentage) and nothing but punctuation after it: that number.
fn concluding_number(after: &str) -> Option<String> {
    let t = after.trim().trim_end_matches(['.', '!']).trim_end();
    if t.contains(['$', '\\']) {
        return None;
    }
    let start = t.rfind(". ").map(|p| p + 2).unwrap_or(0);
    let sentence = t[start..].trim_start();
    let lower = sentence.to_ascii_lowercase();
    if !["therefore", "thus", "so ", "so,", "hence"]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        return None;
    }
    let (body, percent) = match sentence.strip_suffix('%') {
        Some(b) => (b, "%"),
        None => (sentence, ""),
    };
    let n = last_number(body)?;
    body.ends_with(n.as_str())
        .then(|| format!("{}{percent}", n.trim_end_matches(['.', ','])))
}

/// The last number of the final sentence, when the sentence ends with it (up to a short tail).
fn tail_number(text: &str) -> Option<String> {
    let t = text.trim_end();
    let t = t
        .strip_suffix("I hope it is correct.")
        .unwrap_or(t)
        .trim_end();
    let t = t.trim_end_matches(['.', '!', ' ']);
    let start = t
        .rfind(". ")
        .map(|p| p + 2)
        .into_iter()
        .chain(t.rfind('\n').map(|p| p + 1))
        .max()
        .unwrap_or(0);
    let sentence = &t[start..];
    let n = last_number(sentence)?;
    // The sentence must end with the number, allowing a short unit or currency tail ("€", "m²",
    // "cents") — not "15, but neither worked out".
    let end = sentence.rfind(n.as_str())? + n.len();
    (sentence[end..].chars().count() <= 12).then_some(n)
}

/// The last number in the text: integers, decimals, thousands separators, fractions `a/b`.
pub fn last_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = b.len();
    // Walk back to the last digit.
    while i > 0 && !b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i == 0 {
        return None;
    }
    let end = i;
    let mut start = end;
    while start > 0 {
        let c = b[start - 1];
        let digit_before = start >= 2 && b[start - 2].is_ascii_digit();
        if c.is_ascii_digit() || ((c == b'.' || c == b',' || c == b'/') && digit_before) {
            start -= 1;
        } else {
            break;
        }
    }
    if start > 0 && b[start - 1] == b'-' && (start < 2 || !b[start - 2].is_ascii_alphanumeric()) {
        start -= 1;
    }
    Some(text[start..end].to_string())
}

/// Last standalone occurrence of one of the multiple-choice labels.
fn last_choice(text: &str, choices: &[String]) -> Option<String> {
    let b = text.as_bytes();
    let mut best: Option<(usize, &String)> = None;
    for c in choices {
        let mut from = 0;
        while let Some(p) = text[from..].find(c.as_str()) {
            let pos = from + p;
            let before_ok = pos == 0 || !b[pos - 1].is_ascii_alphanumeric();
            let after = pos + c.len();
            let after_ok = after >= b.len() || !b[after].is_ascii_alphanumeric();
            if before_ok && after_ok && best.is_none_or(|(bp, _)| pos > bp) {
                best = Some((pos, c));
            }
            from = pos + c.len().max(1);
        }
    }
    best.map(|(_, c)| c.clone())
}
