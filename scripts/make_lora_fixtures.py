#!/usr/bin/env python3
"""LoRA parity fixtures for crates/model: PEFT adapters on the tiny random base models of
scripts/make_model_fixtures.py, and what PEFT + transformers compute with them.

Set-up (CPU torch, transformers and peft from PyPI):
    python3 -m venv /tmp/loravenv && /tmp/loravenv/bin/pip install torch transformers peft safetensors
Run from the repository root:
    /tmp/loravenv/bin/python scripts/make_lora_fixtures.py              # write fixtures
    /tmp/loravenv/bin/python scripts/make_lora_fixtures.py --check-ours
The second form has the Rust example `lora_roundtrip` put adapters of its own (our
initialisation, B set non-zero) on each base, save them in PEFT's layout with our logits, then
loads each saved adapter with `PeftModel.from_pretrained` and compares logits.

Each fixture directory crates/model/tests/fixtures/lora/<name>/ holds the adapter as
`PeftModel.save_pretrained` wrote it (adapter_config.json, adapter_model.safetensors) and
expected.safetensors with:
  logits [B, T, V]          f32 logits of the adapted model on the base fixture's batch
  logp, entropy [B, R]      response log-probs / entropies at the base fixture's temperature
  grad.<PEFT key>           d/d(adapter matrix) of sum over response tokens of
                            (logp + entropy_weight * entropy), the base fixture's loss
and meta.json naming the base fixture. Adapters use init_lora_weights=False (B not zero, so
every gradient is non-trivial) and dropout 0.
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FIXTURES = os.path.join(ROOT, "crates", "model", "tests", "fixtures")
OUT = os.path.join(MODEL_FIXTURES, "lora")

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# name: (base fixture, r, alpha, target modules, use_rslora)
VARIANTS = {
    "qwen2_r8": ("qwen2_tied_gqa", 8, 16, "all-linear", False),
    "qwen2_r1_rslora": ("qwen2_untied_mha", 1, 4, ["q_proj", "v_proj", "down_proj"], True),
    "llama_r8_rslora": ("llama3_ropescaled_gqa", 8, 12, "all-linear", True),
    "llama_r1": ("llama_bias_tied", 1, 2, ["q_proj", "k_proj", "o_proj", "up_proj"], False),
}


def positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def base_model(base):
    return AutoModelForCausalLM.from_pretrained(os.path.join(MODEL_FIXTURES, base),
                                                attn_implementation="eager", dtype=torch.float32).eval()


def base_batch(base):
    exp = load_file(os.path.join(MODEL_FIXTURES, base, "expected.safetensors"))
    with open(os.path.join(MODEL_FIXTURES, base, "meta.json")) as f:
        meta = json.load(f)
    return exp["input_ids"], exp["attention_mask"], meta


def make(name, base, r, alpha, targets, rslora, seed):
    torch.manual_seed(seed)
    model = base_model(base)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                     use_rslora=rslora, init_lora_weights=False, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    peft_model.eval()
    ids, mask, meta = base_batch(base)
    p_len, temp, w = meta["response_start"], meta["temperature"], meta["entropy_weight"]
    logits = peft_model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
    z = logits[:, p_len - 1:-1, :] / temp
    logp_all = torch.log_softmax(z.float(), dim=-1)
    logp = logp_all.gather(-1, ids[:, p_len:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    rmask = mask[:, p_len:].float()
    loss = ((logp + w * entropy) * rmask).sum()
    peft_model.zero_grad()
    loss.backward()
    out_dir = os.path.join(OUT, name)
    os.makedirs(out_dir, exist_ok=True)
    peft_model.save_pretrained(out_dir)
    # The model card PEFT adds says nothing here; the base path is recorded repository-relative.
    os.remove(os.path.join(out_dir, "README.md"))
    with open(os.path.join(out_dir, "adapter_config.json")) as f:
        adapter_cfg = json.load(f)
    adapter_cfg["base_model_name_or_path"] = f"crates/model/tests/fixtures/{base}"
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(adapter_cfg, f, indent=2, sort_keys=True)
    tensors = {
        "logits": logits.detach().contiguous(),
        "logp": (logp * rmask).detach().contiguous(),
        "entropy": (entropy * rmask).detach().contiguous(),
    }
    n = 0
    for pname, p in peft_model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            raise SystemExit(f"{name}: adapter {pname} got no gradient")
        # PEFT's saved key: the adapter name ("default") dropped.
        key = pname.replace(".default.weight", ".weight")
        tensors[f"grad.{key}"] = p.grad.detach().clone().contiguous()
        n += 1
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"))
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump({"base": base, "seed": seed, "peft": __import__("peft").__version__,
                   "transformers": __import__("transformers").__version__,
                   "torch": torch.__version__}, f, indent=1)
    print(f"{name}: base {base}, r={r}, alpha={alpha}, rslora={rslora}, {n} adapter matrices, "
          f"loss {loss.item():.6f}")


def check_ours():
    """Our adapters, saved by the Rust example, must load in PEFT and give our logits."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "oneshot-model", "--example", "lora_roundtrip"],
                   check=True, cwd=ROOT)
    exe = os.path.join(ROOT, "target", "release", "examples", "lora_roundtrip")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exe, tmp], check=True, cwd=ROOT)
        for name, (base, *_rest) in VARIANTS.items():
            d = os.path.join(tmp, name)
            ours = load_file(os.path.join(d, "ours.safetensors"))["logits"]
            model = PeftModel.from_pretrained(base_model(base), d).eval()
            ids, mask, _ = base_batch(base)
            with torch.no_grad():
                theirs = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
            m = mask.bool()
            diff = (ours[m] - theirs[m]).abs().max().item()
            worst = max(worst, diff)
            print(f"{name}: adapter saved by oneshot, loaded by PEFT {__import__('peft').__version__}: "
                  f"max |logit diff| = {diff:.3g}")
    if worst > 1e-4:
        raise SystemExit(f"cross-loading: logits differ by up to {worst}")
    print(f"cross-loading: all within 1e-4 (worst {worst:.3g})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-ours", action="store_true")
    args = ap.parse_args()
    if args.check_ours:
        check_ours()
        return
    torch.set_num_threads(1)
    for i, (name, v) in enumerate(VARIANTS.items()):
        make(name, *v, seed=4321 + i)


if __name__ == "__main__":
    main()
