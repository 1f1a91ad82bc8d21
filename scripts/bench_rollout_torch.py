#!/usr/bin/env python3
"""PyTorch reference for `oneshot bench rollout`: the 1-shot rollout with transformers generate.

    /tmp/venv/bin/python scripts/bench_rollout_torch.py --config configs/shapes/qwen2.5-0.5b.json \
        --threads 2 --samples 64 --max-new 512 --json

Random weights (transformers from_config). One prompt of --prompt-len tokens, --samples
responses at --temperature, each ending at its own seeded length (the same splitmix64 draw as
the Rust bench, applied with a per-row stopping criterion), generated --batch rows at a time
(generate has no continuous batching: a batch runs until its longest response ends).
tokens_per_s = sum of the lengths / wall time, prefill included.

By default every configuration in {f32, bf16 autocast} x {dynamic, static cache} is timed and
the fastest reported (PyTorch's best on this machine); --variant picks one.
"""
import argparse
import contextlib
import json
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList

MASK64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def lengths(samples, max_new, seed):
    """Response lengths, as `lengths` in crates/cli/src/cmd/bench/rollout.rs."""
    lo = max(1, max_new // 4)
    span = max_new - lo + 1
    base = (seed * 1_000_003) & MASK64
    return [lo + splitmix64((base + i) & MASK64) % span for i in range(samples)]


class StopAtLength(StoppingCriteria):
    """Row i of the batch is done once it has generated lens[i] tokens."""

    def __init__(self, lens, prompt_len):
        self.lens = torch.tensor(lens)
        self.prompt_len = prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        return (input_ids.shape[1] - self.prompt_len) >= self.lens


def run(model, args, lens, autocast, cache):
    vocab = model.config.vocab_size
    prompt = torch.tensor([[(i * 2654435761 + 17) % vocab for i in range(args.prompt_len)]])
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    torch.manual_seed(args.seed)
    total = 0
    t = time.perf_counter()
    for start in range(0, args.samples, args.batch):
        chunk = lens[start:start + args.batch]
        ids = prompt.repeat(len(chunk), 1)
        kw = dict(cache_implementation="static") if cache == "static" else {}
        with torch.inference_mode(), amp():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=args.temperature,
                top_p=1.0,
                top_k=0,
                max_new_tokens=max(chunk),
                min_new_tokens=0,
                eos_token_id=None,
                pad_token_id=0,
                stopping_criteria=StoppingCriteriaList([StopAtLength(chunk, args.prompt_len)]),
                **kw,
            )
        # Every row runs to the batch's longest length; row i's response is its first lens[i].
        assert out.shape[1] - args.prompt_len == max(chunk), out.shape
        total += sum(chunk)
    return total, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch", type=int, default=None, help="rows per generate call (default: all)")
    ap.add_argument("--max-new", type=int, default=512)
    ap.add_argument("--prompt-len", type=int, default=150)
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="best",
                    help="best, or one of f32-dynamic, f32-static, autocast-dynamic, autocast-static")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.samples < 1 or args.max_new < 1 or args.prompt_len < 1:
        ap.error("--samples, --max-new and --prompt-len must be at least 1")
    args.batch = args.batch or args.samples
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    lens = lengths(args.samples, args.max_new, args.seed)
    variants = ["f32-dynamic", "f32-static", "autocast-dynamic", "autocast-static"]
    if args.variant != "best":
        if args.variant not in variants:
            ap.error(f"--variant {args.variant}: expected best or one of {', '.join(variants)}")
        variants = [args.variant]
    results = {}
    for v in variants:
        autocast, cache = v.split("-")
        try:
            # Untimed warm-up of this configuration (first-call allocations, kernel selection).
            warm = argparse.Namespace(**{**vars(args), "samples": min(args.batch, args.samples)})
            run(model, warm, [2] * warm.samples, autocast == "autocast", cache)
            total, wall = run(model, args, lens, autocast == "autocast", cache)
        except Exception as e:  # a configuration this transformers/torch cannot run
            print(f"{v}: failed: {e}", file=sys.stderr)
            continue
        results[v] = {"generated_tokens": total, "wall_s": wall, "tokens_per_s": total / wall}
        if not args.json:
            print(f"{v}: {total} tokens in {wall:.2f} s: {total / wall:.1f} tok/s", flush=True)
    if not results:
        sys.exit("no configuration ran")
    best = max(results, key=lambda v: results[v]["tokens_per_s"])
    out = {
        "impl": "torch",
        "torch": torch.__version__,
        "config": args.config,
        "threads": torch.get_num_threads(),
        "samples": args.samples,
        "batch": args.batch,
        "max_new": args.max_new,
        "prompt_len": args.prompt_len,
        "temperature": args.temperature,
        "seed": args.seed,
        "best": best,
        "generated_tokens": results[best]["generated_tokens"],
        "wall_s": results[best]["wall_s"],
        "time_to_last_token_s": results[best]["wall_s"],
        "tokens_per_s": results[best]["tokens_per_s"],
        "variants": results,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"best: {best}, {out['tokens_per_s']:.1f} tok/s")


if __name__ == "__main__":
    main()
