#!/usr/bin/env python3
"""Side-by-side reference for benches/adamw.rs: torch.optim.AdamW + clip_grad_norm_ on the same
Qwen2.5-0.5B-shaped parameters (default 7 layers = 104.4M), median seconds per step.

Usage: /opt/refvenv/bin/python crates/rl/benches/torch_adamw_reference.py [layers]
"""
import statistics
import sys
import time

import torch

HIDDEN, INTER, KV = 896, 4864, 128
SHAPES = [(HIDDEN, HIDDEN), (HIDDEN,), (KV, HIDDEN), (KV,), (KV, HIDDEN), (KV,), (HIDDEN, HIDDEN),
          (INTER, HIDDEN), (INTER, HIDDEN), (HIDDEN, INTER), (HIDDEN,), (HIDDEN,)]


def bench(layers, dtype, label, **opt_kwargs):
    params = [torch.nn.Parameter(torch.randn(s, dtype=dtype) * 0.02) for _ in range(layers) for s in SHAPES]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(params, lr=1e-6, betas=(0.9, 0.999), weight_decay=0.01, **opt_kwargs)

    def step():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    n = sum(p.numel() for p in params)
    print(f"{label:<34} median {statistics.median(times):.3f} s/step  ({n / 1e6:.1f}M params, "
          f"runs {[round(x, 3) for x in times]})")


def main():
    layers = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench(layers, torch.float32, "torch AdamW f32 (for-loop)", foreach=False)
    bench(layers, torch.float32, "torch AdamW f32 (foreach)", foreach=True)
    bench(layers, torch.float32, "torch AdamW f32 (fused=True)", fused=True)
    bench(layers, torch.bfloat16, "torch AdamW bf16 (fused=True)", fused=True)


if __name__ == "__main__":
    main()
