"""PyTorch side of the kernel benchmark: the same ops and shapes as benches/ops.rs, eager
PyTorch on CPU, forward and forward+backward of sum(outputs), median of N.

Run: /opt/refvenv/bin/python crates/kernels/benches/torch_ops.py [--reps N] [--rows N] [--threads N]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, MLP, VOCAB = 896, 14, 2, 64, 4864, 151936


def median_ms(reps, fn):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench(name, reps, make_outputs):
    def fwd():
        with torch.no_grad():
            make_outputs()

    def fwd_bwd():
        outs = make_outputs()
        sum(o.sum() for o in outs).backward()

    print(f"| {name} | {median_ms(reps, fwd):.2f} | {median_ms(reps, fwd_bwd):.2f} |", flush=True)


def rms_norm(x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def logprobs_and_entropy(logits, targets, temperature):
    z = logits.float() / temperature
    lsm = torch.log_softmax(z, dim=-1)
    logp = lsm.gather(1, targets.unsqueeze(1)).squeeze(1)
    entropy = torch.logsumexp(z, dim=-1) - (lsm.exp() * z).sum(-1)
    return logp, entropy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t, reps = args.rows, args.reps
    rand = lambda *shape, scale=1.0: ((torch.rand(*shape) * 2 - 1) * scale).requires_grad_()

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, median of {reps} (x5 rms_norm/rope)")
    print("| op | torch fwd (ms) | torch fwd+bwd (ms) |")
    print("|---|---:|---:|")
    x, w = rand(t, HIDDEN, scale=2.0), rand(HIDDEN)
    bench(f"rms_norm [{t}, {HIDDEN}]", reps * 5, lambda: [rms_norm(x, w, 1e-6)])
    q = rand(1, HEADS, t, HEAD_DIM)
    cos, sin = torch.rand(1, t, HEAD_DIM // 2), torch.rand(1, t, HEAD_DIM // 2)
    bench(f"rope [1, {HEADS}, {t}, {HEAD_DIM}]", reps * 5, lambda: [rope(q, cos, sin)])
    s = rand(1, HEADS, t, t, scale=8.0)
    bench(f"softmax [1, {HEADS}, {t}, {t}]", reps, lambda: [torch.softmax(s, -1)])
    bench(f"log_softmax [1, {HEADS}, {t}, {t}]", reps, lambda: [torch.log_softmax(s, -1)])
    k, v = rand(1, KV_HEADS, t, HEAD_DIM), rand(1, KV_HEADS, t, HEAD_DIM)
    bench(
        f"causal_attention (sdpa) q [1, {HEADS}, {t}, {HEAD_DIM}], kv {KV_HEADS} heads",
        reps,
        lambda: [F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)],
    )
    gate, up = rand(t, MLP, scale=4.0), rand(t, MLP)
    bench(f"silu_mul [{t}, {MLP}]", reps, lambda: [F.silu(gate) * up])
    logits = rand(t, VOCAB, scale=10.0)
    targets = torch.arange(t) * 7919 % VOCAB
    lreps = max(3, (reps + 1) // 2)
    for temp in (1.0, 0.6):
        bench(f"logprobs_and_entropy [{t}, {VOCAB}] T={temp}", lreps, lambda: list(logprobs_and_entropy(logits, targets, temp)))
    bf = logits.detach().bfloat16().requires_grad_()
    bench(f"logprobs_and_entropy bf16 [{t}, {VOCAB}]", lreps, lambda: list(logprobs_and_entropy(bf, targets, 1.0)))


if __name__ == "__main__":
    main()
