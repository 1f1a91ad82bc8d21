#!/usr/bin/env python3
"""Parity fixtures for crates/model: tiny random Qwen2 / Llama models and what transformers
computes for them.

Run from the repository root with the reference venv:
    /opt/refvenv/bin/python scripts/make_model_fixtures.py            # write fixtures
    /opt/refvenv/bin/python scripts/make_model_fixtures.py --check-roundtrip
The second form has the Rust example `model_roundtrip` load each fixture and save it again
(f32 and bf16), then loads the saved checkpoints in transformers and compares logits.

Each fixture directory crates/model/tests/fixtures/<name>/ holds the model (config.json,
model.safetensors as written by save_pretrained) and expected.safetensors with:
  input_ids, attention_mask [B, T] (i64)  a batch of left-padded prompts + right-padded responses
  logits [B, T, V]                        f32 logits (compare where attention_mask == 1)
  grad.<param name>                       d/dparam of sum over response tokens of
                                          (logp + ENTROPY_WEIGHT * entropy) at TEMPERATURE
  gen_prompt_ids, gen_attention_mask      left-padded prompts for generation
  greedy_tokens [B, GEN_TOKENS]           greedy continuation (transformers generate, KV cache)
and meta.json with response_start, temperature, entropy_weight.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "crates", "model", "tests", "fixtures")
TEMPERATURE = 0.7
ENTROPY_WEIGHT = 0.5
GEN_TOKENS = 32
VOCAB = 128

COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=4, head_dim=8, max_position_embeddings=256, rms_norm_eps=1e-6,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)

VARIANTS = {
    # Qwen2: q/k/v biases, tied embeddings, grouped-query attention (4 query / 2 kv heads).
    "qwen2_tied_gqa": Qwen2Config(**COMMON, num_key_value_heads=2, tie_word_embeddings=True,
                                  rope_theta=1_000_000.0),
    # Qwen2 with its own lm_head and plain multi-head attention.
    "qwen2_untied_mha": Qwen2Config(**COMMON, num_key_value_heads=4, tie_word_embeddings=False,
                                    rope_theta=10_000.0),
    # Llama 3 style: llama3 rope scaling (short original context so all three frequency bands
    # occur at head_dim 8), no biases, 4 query / 1 kv head, untied.
    "llama3_ropescaled_gqa": LlamaConfig(**COMMON, num_key_value_heads=1, tie_word_embeddings=False,
                                         rope_theta=10_000.0, attention_bias=False,
                                         rope_scaling={"rope_type": "llama3", "factor": 4.0,
                                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                       "original_max_position_embeddings": 16}),
    # Llama with attention_bias (q/k/v/o biases) and tied embeddings.
    "llama_bias_tied": LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=True,
                                   rope_theta=500_000.0, attention_bias=True),
}


def randomize(model, seed):
    """Weights of std 0.15, norm weights around 1, non-zero biases: every parameter matters
    and the logits are far from uniform, so greedy decoding has no near-ties."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)


def training_batch(g):
    prompts = [[1, 17, 33, 45, 60], [1, 90, 12], [1, 5, 77, 101]]
    responses = [[40, 41, 42, 43], [7, 8, 9, 10, 11, 12], [100, 2]]
    p_len = max(map(len, prompts))
    r_len = max(map(len, responses))
    ids, mask = [], []
    for p, r in zip(prompts, responses):
        ids.append([0] * (p_len - len(p)) + p + r + [0] * (r_len - len(r)))
        mask.append([0] * (p_len - len(p)) + [1] * (len(p) + len(r)) + [0] * (r_len - len(r)))
    return torch.tensor(ids), torch.tensor(mask), p_len


def positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def make(name, cfg, seed):
    torch.manual_seed(seed)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    randomize(model, seed)
    model.eval()
    out_dir = os.path.join(FIXTURES, name)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    g = torch.Generator().manual_seed(seed + 1)
    ids, mask, p_len = training_batch(g)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask))
    logits = out.logits
    # Loss: sum over real response tokens of logp + w * entropy, logits / temperature.
    z = logits[:, p_len - 1:-1, :] / TEMPERATURE
    logp_all = torch.log_softmax(z.float(), dim=-1)
    targets = ids[:, p_len:]
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    rmask = mask[:, p_len:].float()
    loss = ((logp + ENTROPY_WEIGHT * entropy) * rmask).sum()
    model.zero_grad()
    loss.backward()
    tensors = {
        "input_ids": ids.contiguous(),
        "attention_mask": mask.contiguous(),
        "logits": logits.detach().contiguous(),
        "logp": (logp * rmask).detach().contiguous(),
        "entropy": (entropy * rmask).detach().contiguous(),
    }
    for pname, p in model.named_parameters():
        if p.grad is None:
            raise SystemExit(f"{name}: parameter {pname} got no gradient")
        tensors[f"grad.{pname}"] = p.grad.detach().clone().contiguous()

    gen_prompts = [[1, 50, 51, 52, 53, 54], [1, 3], [1, 70, 20, 99]]
    width = max(map(len, gen_prompts))
    gids = torch.tensor([[0] * (width - len(p)) + p for p in gen_prompts])
    gmask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in gen_prompts])
    with torch.no_grad():
        gen = model.generate(input_ids=gids, attention_mask=gmask, do_sample=False,
                             max_new_tokens=GEN_TOKENS, min_new_tokens=GEN_TOKENS,
                             eos_token_id=None, pad_token_id=0, use_cache=True)
    tensors["gen_prompt_ids"] = gids.contiguous()
    tensors["gen_attention_mask"] = gmask.contiguous()
    tensors["greedy_tokens"] = gen[:, width:].contiguous()
    assert tensors["greedy_tokens"].shape[1] == GEN_TOKENS
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"))
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump({"response_start": p_len, "temperature": TEMPERATURE,
                   "entropy_weight": ENTROPY_WEIGHT, "seed": seed,
                   "transformers": __import__("transformers").__version__,
                   "torch": torch.__version__}, f, indent=1)
    print(f"{name}: loss {loss.item():.6f}, greedy row 0 {tensors['greedy_tokens'][0, :8].tolist()}")


def check_roundtrip():
    """Rust loads each fixture and saves it (f32 and bf16); transformers must give the same
    logits for the saved checkpoint as for the original."""
    results = []
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "oneshot-model", "--example", "model_roundtrip"],
                   check=True, cwd=ROOT)
    exe = os.path.join(ROOT, "target", "release", "examples", "model_roundtrip")
    with tempfile.TemporaryDirectory() as tmp:
        for name in VARIANTS:
            src = os.path.join(FIXTURES, name)
            ids, mask, _ = training_batch(None)
            for dtype in ["f32", "bf16"]:
                dst = os.path.join(tmp, f"{name}-{dtype}")
                subprocess.run([exe, src, dst, dtype], check=True, cwd=ROOT)
                want_dtype = torch.float32 if dtype == "f32" else torch.bfloat16
                # Reference: transformers loading the original checkpoint in the saved dtype.
                ref = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager", dtype=want_dtype).eval()
                saved = AutoModelForCausalLM.from_pretrained(dst, attn_implementation="eager").eval()
                assert saved.dtype == want_dtype, (saved.dtype, want_dtype)
                ref_sd, saved_sd = ref.state_dict(), saved.state_dict()
                assert ref_sd.keys() == saved_sd.keys(), (ref_sd.keys() ^ saved_sd.keys())
                for k in ref_sd:
                    assert torch.equal(ref_sd[k], saved_sd[k]), f"{name} {dtype}: tensor {k} differs"
                with torch.no_grad():
                    a = ref(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
                    b = saved(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
                m = mask.bool()
                diff = (a[m].float() - b[m].float()).abs().max().item()
                results.append((name, dtype, diff))
                print(f"{name} {dtype}: saved by Rust, loaded by transformers: tensors bit-identical, "
                      f"max |logit diff| = {diff:.3g}")
    bad = [r for r in results if r[2] != 0.0]
    if bad:
        raise SystemExit(f"round trip changed logits: {bad}")
    print("round trip: all logits identical")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-roundtrip", action="store_true")
    args = ap.parse_args()
    if args.check_roundtrip:
        check_roundtrip()
        return
    torch.set_num_threads(1)
    for i, (name, cfg) in enumerate(VARIANTS.items()):
        make(name, cfg, seed=1234 + i)


if __name__ == "__main__":
    main()
