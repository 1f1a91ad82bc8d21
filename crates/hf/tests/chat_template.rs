//! Chat templates render exactly as transformers' `apply_chat_template` does.

use oneshot_hf::{ChatMessage, ChatTemplate};
use serde_json::{json, Value};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates")
}

fn template(name: &str, bos: Option<&str>, eos: Option<&str>) -> ChatTemplate {
    let src = std::fs::read_to_string(fixtures().join(name)).unwrap();
    ChatTemplate::from_str(&src, bos.map(str::to_string), eos.map(str::to_string)).unwrap()
}

#[test]
fn renders_like_transformers_for_every_reference_case() {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(
        cases.len() >= 25,
        "expected.json holds {} cases",
        cases.len()
    );
    for case in &cases {
        let tokens = &case["tokens"];
        let tmpl = template(
            case["template"].as_str().unwrap(),
            tokens["bos_token"].as_str(),
            tokens["eos_token"].as_str(),
        );
        let messages: Vec<ChatMessage> = serde_json::from_value(case["messages"].clone()).unwrap();
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        let got = tmpl.render_with(&messages, gen, &case["extra"]).unwrap();
        assert_eq!(
            got,
            case["expected"].as_str().unwrap(),
            "template {} case {} add_generation_prompt={gen}",
            case["template"],
            case["name"]
        );
    }
}

#[test]
fn qwen_default_system_prompt_and_generation_prompt() {
    let qwen = template("qwen2.5-instruct.jinja", None, Some("<|im_end|>"));
    let msgs = [ChatMessage::user("1+1?")];
    let base = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
                <|im_start|>user\n1+1?<|im_end|>\n";
    assert_eq!(qwen.render(&msgs, false).unwrap(), base);
    assert_eq!(
        qwen.render(&msgs, true).unwrap(),
        format!("{base}<|im_start|>assistant\n")
    );

    let math = template("qwen2.5-math-instruct.jinja", None, Some("<|im_end|>"));
    let got = math.render(&msgs, true).unwrap();
    assert!(got.starts_with(
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
    ));
}

#[test]
fn from_dir_reads_tokenizer_config_with_added_token_objects() {
    let dir = tempfile::tempdir().unwrap();
    let src = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}";
    let cfg = json!({
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
        "eos_token": "</s>",
        "chat_template": src,
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
    let t = ChatTemplate::from_dir(dir.path())
        .unwrap()
        .expect("template present");
    assert_eq!((t.bos_token(), t.eos_token()), (Some("<s>"), Some("</s>")));
    assert_eq!(
        t.render(&[ChatMessage::user("hi")], false).unwrap(),
        "<s>[user]hi</s>"
    );

    // A separate chat_template.jinja wins over the config field (newer transformers layout).
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "J{{ messages|length }}",
    )
    .unwrap();
    let t = ChatTemplate::from_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&[ChatMessage::user("hi")], false).unwrap(), "J1");
}

#[test]
fn from_dir_handles_named_template_lists_and_missing_templates() {
    let dir = tempfile::tempdir().unwrap();
    let write =
        |v: Value| std::fs::write(dir.path().join("tokenizer_config.json"), v.to_string()).unwrap();

    write(json!({"chat_template": [
        {"name": "tool_use", "template": "TOOLS"},
        {"name": "default", "template": "DEFAULT"}
    ]}));
    let t = ChatTemplate::from_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "DEFAULT");

    write(json!({"chat_template": [{"name": "tool_use", "template": "TOOLS"}]}));
    let err = format!("{:#}", ChatTemplate::from_dir(dir.path()).unwrap_err());
    assert!(
        err.contains("default") && err.contains("tokenizer_config.json"),
        "{err}"
    );

    // Base models: config without a template, or no config at all.
    write(json!({"eos_token": "<|endoftext|>"}));
    assert!(ChatTemplate::from_dir(dir.path()).unwrap().is_none());
    let empty = tempfile::tempdir().unwrap();
    assert!(ChatTemplate::from_dir(empty.path()).unwrap().is_none());

    std::fs::write(dir.path().join("tokenizer_config.json"), "{not json").unwrap();
    let err = format!("{:#}", ChatTemplate::from_dir(dir.path()).unwrap_err());
    assert!(err.contains("tokenizer_config.json"), "{err}");
}

#[test]
fn raise_exception_and_syntax_errors_are_reported() {
    let t = ChatTemplate::from_str(
        "{% if messages[0].role != 'user' %}{{ raise_exception('roles must start with user') }}{% endif %}ok",
        None,
        None,
    )
    .unwrap();
    assert_eq!(t.render(&[ChatMessage::user("x")], false).unwrap(), "ok");
    let err = t
        .render(&[ChatMessage::assistant("x")], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("roles must start with user"), "{err}");

    let err = ChatTemplate::from_str("{% for m in messages %}", None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("compiling chat template"), "{err}");
}

#[test]
fn strftime_now_prints_the_current_local_date() {
    // The call Llama 3.2+ templates make when no date_string is passed.
    let t = ChatTemplate::from_str(
        "{%- if strftime_now is defined %}{{ strftime_now(\"%d %b %Y\") }}{% else %}missing{% endif %}",
        None,
        None,
    )
    .unwrap();
    let before = chrono::Local::now().format("%d %b %Y").to_string();
    let got = t.render(&[], false).unwrap();
    let after = chrono::Local::now().format("%d %b %Y").to_string();
    assert!(got == before || got == after, "{got} vs {before}/{after}");
    let bad = ChatTemplate::from_str("{{ strftime_now('%Q') }}", None, None).unwrap();
    assert!(bad.render(&[], false).is_err());
}

#[test]
fn python_string_methods_and_tojson_options_work() {
    let t = ChatTemplate::from_str(
        "{{ messages[0].content.strip() }}|{% if messages[0].content.startswith('  a') %}yes{% endif %}|{{ {'b': 1, 'a': [2]} | tojson(sort_keys=true) }}",
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        t.render(&[ChatMessage::user("  a b ")], false).unwrap(),
        "a b|yes|{\"a\": [2], \"b\": 1}"
    );
}
