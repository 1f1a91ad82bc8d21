//! JSON text exactly as Python's `json.dumps(..., ensure_ascii=False)` writes it.
//!
//! Chat templates call `tojson` (tool schemas, tool-call arguments) and transformers implements it
//! with `json.dumps`, whose separators differ from serde_json's compact form (`", "` and `": "`
//! without indent; `","` plus newlines with indent). minijinja's built-in `tojson` also
//! HTML-escapes `<`, `>`, `&` and `'`, which Python does not. Matching byte for byte matters
//! because the rendered prompt is tokenized and trained on.

use serde_json::Value;
use std::fmt::Write;

/// `json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys)`.
pub fn dumps(v: &Value, indent: Option<usize>, sort_keys: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, v, indent, sort_keys, 0);
    out
}

fn write_value(out: &mut String, v: &Value, indent: Option<usize>, sort_keys: bool, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => {
            out.push_str(&serde_json::to_string(s).expect("strings always serialize"))
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, indent, depth + 1);
                write_value(out, item, indent, sort_keys, depth + 1);
            }
            closing(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                separator(out, i, indent, depth + 1);
                out.push_str(&serde_json::to_string(k).expect("strings always serialize"));
                out.push_str(": ");
                write_value(out, item, indent, sort_keys, depth + 1);
            }
            closing(out, indent, depth);
            out.push('}');
        }
    }
}

/// Python prints floats with `repr`: integral floats keep a trailing `.0`, exponents as `1e+20`.
fn write_number(out: &mut String, n: &serde_json::Number) {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or(0.0);
        let s = format!("{f:?}");
        // Rust's Debug gives "1e20"/"1e-7"; Python's repr gives "1e+20"/"1e-07".
        if let Some((mant, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let _ = write!(out, "{mant}e{sign}{digits:0>2}");
        } else {
            out.push_str(&s);
        }
    } else {
        out.push_str(&n.to_string());
    }
}

fn separator(out: &mut String, i: usize, indent: Option<usize>, depth: usize) {
    match indent {
        None => {
            if i > 0 {
                out.push_str(", ");
            }
        }
        Some(w) => {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            out.push_str(&" ".repeat(w * depth));
        }
    }
}

fn closing(out: &mut String, indent: Option<usize>, depth: usize) {
    if let Some(w) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(w * depth));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings are what CPython 3 `json.dumps(..., ensure_ascii=False)` prints.
        let v = json!({"name": "f", "args": {"x": 1, "y": [1.5, true, null]}, "s": "<é\"\n>"});
        assert_eq!(
            dumps(&v, None, false),
            r#"{"name": "f", "args": {"x": 1, "y": [1.5, true, null]}, "s": "<é\"\n>"}"#
        );
        assert_eq!(
            dumps(&json!({"b": [1, {}], "a": []}), Some(2), false),
            "{\n  \"b\": [\n    1,\n    {}\n  ],\n  \"a\": []\n}"
        );
        assert_eq!(
            dumps(&json!({"b": 1, "a": 2}), None, true),
            r#"{"a": 2, "b": 1}"#
        );
        assert_eq!(
            dumps(
                &json!([1.0, 1e20, 1e-7, -0.5, 1e16, 1e-5, 0.0001]),
                None,
                false
            ),
            "[1.0, 1e+20, 1e-07, -0.5, 1e+16, 1e-05, 0.0001]"
        );
    }
}
