"""Render the chat-template fixtures with transformers (the reference implementation of
`apply_chat_template`) and write the expected strings the Rust tests compare against.

Usage (from the repository root, with the reference venv):
    /opt/refvenv/bin/python crates/hf/scripts/chat_template_expected.py

Writes crates/hf/tests/fixtures/chat_templates/expected.json. Each case names a template file, the
special tokens, the messages, add_generation_prompt and extra template variables; `expected` is what
transformers' `render_jinja_template` produces for exactly those inputs.
"""

import json
from pathlib import Path

from transformers.utils.chat_template_utils import render_jinja_template

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat_templates"

QWEN_TOKENS = {"eos_token": "<|im_end|>"}  # Qwen2.5 has no bos token
LLAMA_TOKENS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}

USER_ONLY = [{"role": "user", "content": "What is 2+3?"}]
WITH_SYSTEM = [
    {"role": "system", "content": "Answer tersely."},
    {"role": "user", "content": "What is 2+3?"},
]
MULTI_TURN = [
    {"role": "system", "content": "  Answer tersely.  "},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And times 4?\n"},
]
# Unicode, quotes, braces and backslashes must pass through unchanged.
AWKWARD = [{"role": "user", "content": "Solve $\\frac{1}{2} + x = 1$ — \"quote\" <tag> {braces} 'é'"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers <a & b>",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number", "default": 1.5}},
                "required": ["a"],
            },
        },
    }
]


def cases():
    for template, tokens in [
        ("qwen2.5-instruct.jinja", QWEN_TOKENS),
        ("qwen2.5-math-instruct.jinja", QWEN_TOKENS),
        ("llama-3.1-instruct.jinja", LLAMA_TOKENS),
    ]:
        for name, messages in [
            ("user_only", USER_ONLY),
            ("with_system", WITH_SYSTEM),
            ("multi_turn", MULTI_TURN),
            ("awkward", AWKWARD),
        ]:
            for gen in (True, False):
                yield {"template": template, "tokens": tokens, "name": name, "messages": messages,
                       "add_generation_prompt": gen, "extra": {}}
        # Tool schemas exercise `tojson` (compact in Qwen, indent=4 in Llama).
        yield {"template": template, "tokens": tokens, "name": "tools", "messages": WITH_SYSTEM,
               "add_generation_prompt": True, "extra": {"tools": TOOLS}}
    yield {"template": "llama-3.1-instruct.jinja", "tokens": LLAMA_TOKENS, "name": "date_string",
           "messages": USER_ONLY, "add_generation_prompt": True, "extra": {"date_string": "01 Jan 2025"}}


def main():
    out = []
    for case in cases():
        source = (FIXTURES / case["template"]).read_text()
        extra = dict(case["extra"])
        tools = extra.pop("tools", None)
        rendered, _ = render_jinja_template(
            conversations=[case["messages"]],
            tools=tools,
            chat_template=source,
            add_generation_prompt=case["add_generation_prompt"],
            **case["tokens"],
            **extra,
        )
        case["expected"] = rendered[0]
        out.append(case)
    path = FIXTURES / "expected.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} cases to {path}")


if __name__ == "__main__":
    main()
