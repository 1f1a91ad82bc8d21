#!/usr/bin/env python3
"""PyTorch reference for `oneshot bench model`: the same measurements on the same shapes.

    /opt/refvenv/bin/python scripts/bench_model_torch.py --config configs/shapes/qwen2.5-0.5b.json \
        --dtype f32 --threads 2

    python scripts/bench_model_torch.py --config configs/shapes/qwen2.5-1.5b.json \
        --device cuda --dtype bf16

Random weights (transformers from_config) on --device (cpu, cuda or cuda:N). Measures:
- forward: log-probs + entropies of the response part of a rows x seq batch (no grad), tok/s;
- decode: generate() with KV cache at batch 1, 8, 32; (t(N tokens) - t(1 token)) / (N - 1) per step;
- train step: forward + backward of the same loss, then torch.optim.AdamW (the default
  implementation, foreach) over all parameters; two whole steps are run and the second is
  timed (the first allocates the moment buffers and pays first-touch costs).

--autocast runs f32 weights under torch.autocast(<device type>, bfloat16) (PyTorch's mixed
precision); --dtype bf16 stores the weights in bf16; --attn picks the attention kernel (sdpa or
eager). On a GPU every timed region ends with torch.cuda.synchronize(), and AdamW is the fused
CUDA implementation (fused=True), PyTorch's fastest.
"""
import argparse
import contextlib
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, reps, fn):
    fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--decode-batches", default="1,8,32")
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--autocast", action="store_true")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device != "cpu" and not args.device.startswith("cuda"):
        ap.error(f"--device {args.device}: expected cpu, cuda or cuda:N")
    device = torch.device(args.device)
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    cfg = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=args.attn, dtype=dtype)
    model = model.to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch model bench: {args.config} ({n_params / 1e6:.0f}M params), device {device}, dtype {dtype}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}, attn {args.attn}, autocast {args.autocast}")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.autocast else contextlib.nullcontext
    vocab = cfg.vocab_size
    ids = ((torch.arange(args.rows * args.seq).reshape(args.rows, args.seq) * 2654435761) % vocab).to(device)
    mask = torch.ones_like(ids)
    p = args.prompt

    def logprobs():
        with amp():
            logits = model(input_ids=ids, attention_mask=mask).logits
        logits = logits[:, p - 1:-1].float() / 0.6
        lp_all = torch.log_softmax(logits, -1)
        lp = lp_all.gather(-1, ids[:, p:].unsqueeze(-1)).squeeze(-1)
        ent = -(lp_all.exp() * lp_all).sum(-1)
        return lp, ent

    with torch.no_grad():
        fwd = timed(device, 2, logprobs)
    tokens = args.rows * args.seq
    print(f"forward log-probs {args.rows}x{args.seq}: {fwd:.3f} s, {tokens / fwd:.1f} tok/s")

    for b in [int(x) for x in args.decode_batches.split(",")]:
        lens = [16 + r % 8 for r in range(b)]
        width = max(lens)
        pids = torch.zeros(b, width, dtype=torch.long)
        pmask = torch.zeros(b, width, dtype=torch.long)
        for r, n in enumerate(lens):
            pids[r, width - n:] = (torch.arange(n) + r * 77) * 2654435761 % vocab
            pmask[r, width - n:] = 1
        pids, pmask = pids.to(device), pmask.to(device)

        def gen(n):
            with torch.no_grad(), amp():
                model.generate(input_ids=pids, attention_mask=pmask, do_sample=True, temperature=0.6,
                               top_p=1.0, top_k=0, max_new_tokens=n, min_new_tokens=n,
                               eos_token_id=None, pad_token_id=0)
        t1 = timed(device, 1, lambda: gen(1))
        tn = timed(device, 1, lambda: gen(args.decode_tokens))
        per_step = (tn - t1) / (args.decode_tokens - 1)
        print(f"decode batch {b:>2}: {b / per_step:.1f} tok/s ({per_step * 1e3:.1f} ms/step, "
              f"prefill+first token {t1:.2f} s)")

    if args.no_train:
        return
    model.train()
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01, **fused)
    n_tok = args.rows * (args.seq - p)
    # Two whole steps, timing the second (the first pays first-touch costs of fresh buffers,
    # as the Rust bench does).
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        t = time.perf_counter()
        lp, ent = logprobs()
        loss = -lp.sum() / n_tok - 0.001 * ent.sum() / n_tok
        loss.backward()
        sync(device)
        fb = time.perf_counter() - t
        t = time.perf_counter()
        opt.step()
        sync(device)
        o = time.perf_counter() - t
    print(f"train step {args.rows}x{args.seq}: {fb + o:.2f} s (forward+backward {fb:.2f} s, AdamW {o:.2f} s)")


if __name__ == "__main__":
    main()
