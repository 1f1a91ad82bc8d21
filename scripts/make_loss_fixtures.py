#!/usr/bin/env python3
"""Reference fixtures for crates/rl (oneshot-rl) and crates/optim (oneshot-optim).

Writes crates/rl/tests/fixtures/losses.json: verl's actor/critic loss formulas and advantage
estimators, implemented independently here in float64 numpy on fixed inputs, with analytic
gradients w.r.t. the log-probs, the entropies and the logits (logits -> log_softmax(logits / T)
-> gather; entropy of softmax(logits / T)). The analytic gradients are checked against central
finite differences before anything is written.

Also writes crates/optim/tests/fixtures/adamw.json from torch.optim.AdamW with
torch.nn.utils.clip_grad_norm_ (skipped with a message when torch is not importable).

Usage: /opt/refvenv/bin/python scripts/make_loss_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "rl", "tests", "fixtures")
OPTIM_OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "optim", "tests", "fixtures")

B, T, V = 4, 6, 11
TEMPERATURE = 0.6
LENGTHS = [6, 4, 1, 3]
MICRO_BATCHES = 2
GRPO_EPS = 1e-6
WHITEN_EPS = 1e-8


# ---------------------------------------------------------------- inputs
def make_inputs():
    rng = np.random.default_rng(20250425)
    logits = rng.normal(0.0, 2.0, size=(B, T, V))
    targets = rng.integers(0, V, size=(B, T))
    mask = np.zeros((B, T))
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1.0
    logp, _ = logp_entropy(logits, targets)
    # Old log-probs off by up to ~0.6 so that ratios leave [0.8, 1.28] on both sides.
    old_logp = logp + rng.normal(0.0, 0.3, size=(B, T))
    old_logp[0, 1] = logp[0, 1] - 1.5  # ratio e^1.5 = 4.5: dual-clip territory ...
    old_logp[1, 0] = logp[1, 0] - 1.3  # ... and again
    ref_logp = logp + rng.normal(0.0, 0.5, size=(B, T))
    ref_logp[0, 2] = logp[0, 2] + 3.5  # k3 = e^3.5 - 4.5 = 28.6: hits the clamp at 10
    adv = rng.normal(0.0, 1.0, size=(B, T))
    adv[0, 1] = -1.1  # negative advantage on the big ratios -> dual clip active
    adv[1, 0] = -0.6
    return dict(logits=logits, targets=targets, mask=mask, old_logp=old_logp, ref_logp=ref_logp, adv=adv)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def logp_entropy(logits, targets):
    z = logits / TEMPERATURE
    lsm = log_softmax(z)
    p = np.exp(lsm)
    logp = np.take_along_axis(lsm, targets[..., None], axis=-1)[..., 0]
    entropy = -(p * lsm).sum(axis=-1)
    return logp, entropy


# ---------------------------------------------------------------- verl formulas
def agg_weights(mask, mode, micro_batches=MICRO_BATCHES):
    """Per-token weights w such that agg(loss) = sum(w * loss)."""
    counts = mask.sum(axis=1)
    seqs = float((counts > 0).sum())
    w = np.zeros_like(mask)
    if mode == "token-mean":
        w = mask / mask.sum()
    elif mode == "seq-mean-token-mean":
        for b in range(mask.shape[0]):
            if counts[b] > 0:
                w[b] = mask[b] / counts[b] / seqs
    elif mode == "seq-mean-token-sum":
        w = mask / seqs
    elif mode == "seq-mean-token-sum-norm":
        w = mask / (mask.shape[1] * seqs)
    elif mode == "micro-batch-token-mean":
        # verl 0.2: token mean inside each micro-batch, each scaled by 1/grad_accum.
        rows = mask.shape[0] // micro_batches
        for k in range(micro_batches):
            sl = slice(k * rows, (k + 1) * rows)
            w[sl] = mask[sl] / mask[sl].sum() / micro_batches
    else:
        raise ValueError(mode)
    return w


def kl_and_grad(logp, ref, kind):
    if kind == "k1":
        return logp - ref, np.ones_like(logp)
    if kind == "k2":
        return 0.5 * (logp - ref) ** 2, logp - ref
    if kind == "k3":
        x = ref - logp
        kl = np.exp(x) - x - 1.0
        grad = 1.0 - np.exp(x)
        clamped = (kl > 10.0) | (kl < -10.0)
        return np.clip(kl, -10.0, 10.0), np.where(clamped, 0.0, grad)
    raise ValueError(kind)


def policy_loss(inp, logp, entropy, cfg):
    """Returns loss, metrics and d loss / d logp, d loss / d entropy."""
    mask, adv, old = inp["mask"], inp["adv"], inp["old_logp"]
    w = agg_weights(mask, cfg["agg"])
    ratio = np.exp(logp - old)
    pg1 = -adv * ratio
    pg2 = -adv * np.clip(ratio, 1.0 - cfg["clip_low"], 1.0 + cfg["clip_high"])
    clipped = pg2 > pg1
    pg = np.maximum(pg1, pg2)
    dpg = np.where(clipped, 0.0, -adv * ratio)
    dual = np.zeros_like(mask, dtype=bool)
    if cfg["dual_clip"] is not None:
        pg3 = -adv * cfg["dual_clip"]
        dual = (adv < 0) & (pg > pg3)
        pg = np.where(dual, pg3, pg)
        dpg = np.where(dual, 0.0, dpg)
    pg_loss = float((w * pg).sum())
    loss = pg_loss
    grad_logp = w * dpg
    kl_loss = 0.0
    if cfg["kl"] is not None:
        kl, dkl = kl_and_grad(logp, inp["ref_logp"], cfg["kl"]["kind"])
        kl_loss = float((w * kl).sum())
        loss += cfg["kl"]["coef"] * kl_loss
        grad_logp = grad_logp + cfg["kl"]["coef"] * w * dkl
    ent = float((w * entropy).sum())
    loss -= cfg["entropy_coef"] * ent
    grad_entropy = -cfg["entropy_coef"] * w
    on = mask > 0
    n = on.sum()
    hi, lo = 1.0 + cfg["clip_high"], 1.0 - cfg["clip_low"]
    metrics = dict(
        loss=loss,
        pg_loss=pg_loss,
        kl_loss=kl_loss,
        entropy=ent,
        clipfrac_high=float(((adv > 0) & (ratio > hi) & on).sum() / n),
        clipfrac_low=float(((adv < 0) & (ratio < lo) & on).sum() / n),
        pg_clipfrac=float((clipped & on).sum() / n),  # verl's pg_clipfrac
        dual_clipfrac=float((dual & on).sum() / n),
        approx_kl=float(((old - logp) * mask).sum() / n),
        ratio_mean=float((ratio * mask).sum() / n),
        ratio_min=float(ratio[on].min()),
        ratio_max=float(ratio[on].max()),
    )
    return loss, metrics, grad_logp, grad_entropy


def logits_grad(logits, targets, grad_logp, grad_entropy):
    """Chain rule through logp = log_softmax(z)[y], H = -sum p log p, z = logits / T."""
    z = logits / TEMPERATURE
    p = np.exp(log_softmax(z))
    onehot = np.eye(V)[targets]
    ez = (p * z).sum(axis=-1, keepdims=True)
    d_logp_dz = onehot - p
    d_h_dz = -p * (z - ez)
    return (grad_logp[..., None] * d_logp_dz + grad_entropy[..., None] * d_h_dz) / TEMPERATURE


def value_loss(vpreds, old_values, returns, mask, clip, agg):
    w = agg_weights(mask, agg)
    vclip = np.clip(vpreds, old_values - clip, old_values + clip)
    e1 = (vpreds - returns) ** 2
    e2 = (vclip - returns) ** 2
    use2 = e2 > e1
    loss = float((w * 0.5 * np.maximum(e1, e2)).sum())
    inside = (vpreds >= old_values - clip) & (vpreds <= old_values + clip)
    grad = w * np.where(use2, np.where(inside, vclip - returns, 0.0), vpreds - returns)
    clipfrac = float((use2 & (mask > 0)).sum() / mask.sum())
    return loss, clipfrac, grad


# ---------------------------------------------------------------- advantages (verl core_algos)
def masked_whiten(values, mask):
    n = mask.sum()
    mean = (values * mask).sum() / n
    var = (((values - mean) ** 2) * mask).sum() / n * (n / (n - 1))
    return (values - mean) / math.sqrt(var + WHITEN_EPS) * mask


def reinforce_pp(rewards, mask, gamma):
    returns = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
        running = running * mask[:, t]
    return masked_whiten(returns, mask), returns


def gae(rewards, values, mask, gamma, lam):
    values = values * mask
    last = np.zeros(rewards.shape[0])
    adv = np.zeros_like(rewards)
    for t in reversed(range(rewards.shape[1])):
        nxt = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * nxt - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    returns = adv + values
    return masked_whiten(adv, mask), returns


def grpo(scores, groups, divide_by_std=True):
    out = np.zeros_like(scores)
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        s = scores[idx]
        mean, std = (0.0, 1.0) if len(idx) == 1 else (s.mean(), s.std(ddof=1))
        out[idx] = (s - mean) / (std + GRPO_EPS) if divide_by_std else s - mean
    return out


def rloo(scores, groups):
    out = scores.copy()
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        n = len(idx)
        if n > 1:
            out[idx] = scores[idx] * n / (n - 1) - scores[idx].mean() * n / (n - 1)
    return out


# ---------------------------------------------------------------- checks
def finite_difference_check(inp, cfg):
    """Central differences of the full loss w.r.t. logits against the analytic gradient."""
    def full_loss(logits):
        logp, ent = logp_entropy(logits, inp["targets"])
        return policy_loss(inp, logp, ent, cfg)[0]

    logp, ent = logp_entropy(inp["logits"], inp["targets"])
    _, _, gl, ge = policy_loss(inp, logp, ent, cfg)
    analytic = logits_grad(inp["logits"], inp["targets"], gl, ge)
    h = 1e-6
    worst = 0.0
    for idx in np.ndindex(*inp["logits"].shape):
        plus, minus = inp["logits"].copy(), inp["logits"].copy()
        plus[idx] += h
        minus[idx] -= h
        numeric = (full_loss(plus) - full_loss(minus)) / (2 * h)
        worst = max(worst, abs(numeric - analytic[idx]))
    if worst > 1e-7:
        sys.exit(f"finite-difference check failed for {cfg}: max error {worst:.3e}")
    return worst


def policy_cases():
    base = dict(clip_low=0.2, clip_high=0.2, dual_clip=None, kl=dict(kind="k3", coef=0.1),
                entropy_coef=0.01, agg="token-mean")
    cases = []
    for agg in ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                "seq-mean-token-sum-norm", "micro-batch-token-mean"]:
        cases.append((f"base_{agg}", dict(base, agg=agg)))
    cases.append(("clip_higher", dict(base, clip_high=0.28)))
    cases.append(("dual_clip", dict(base, dual_clip=3.0)))
    cases.append(("dual_clip_seq_mean", dict(base, dual_clip=3.0, agg="seq-mean-token-mean")))
    cases.append(("kl_k1", dict(base, kl=dict(kind="k1", coef=0.1))))
    cases.append(("kl_k2", dict(base, kl=dict(kind="k2", coef=0.1))))
    cases.append(("pg_only", dict(base, kl=None, entropy_coef=0.0)))
    cases.append(("paper_default", dict(base, kl=dict(kind="k3", coef=0.001), entropy_coef=0.001)))
    return cases


def r(a):
    """Round-trip friendly list (float64 repr)."""
    return np.asarray(a, dtype=np.float64).tolist()


def build_loss_fixture():
    inp = make_inputs()
    logp, entropy = logp_entropy(inp["logits"], inp["targets"])
    fixture = dict(
        description="verl loss formulas in float64 numpy (scripts/make_loss_fixtures.py)",
        temperature=TEMPERATURE,
        micro_batches=MICRO_BATCHES,
        inputs=dict(logits=r(inp["logits"]), targets=inp["targets"].tolist(), mask=r(inp["mask"]),
                    logp=r(logp), entropy=r(entropy), old_logp=r(inp["old_logp"]),
                    ref_logp=r(inp["ref_logp"]), advantages=r(inp["adv"])),
        policy_cases=[],
    )
    worst = 0.0
    for name, cfg in policy_cases():
        loss, metrics, gl, ge = policy_loss(inp, logp, entropy, cfg)
        glogits = logits_grad(inp["logits"], inp["targets"], gl, ge)
        worst = max(worst, finite_difference_check(inp, cfg))
        fixture["policy_cases"].append(dict(name=name, config=cfg, metrics=metrics, grad_logp=r(gl),
                                            grad_entropy=r(ge), grad_logits=r(glogits)))

    rng = np.random.default_rng(7)
    vpreds = rng.normal(0.0, 1.0, size=(B, T))
    old_values = vpreds + rng.normal(0.0, 0.6, size=(B, T))
    returns = rng.normal(0.0, 1.0, size=(B, T))
    fixture["value_inputs"] = dict(vpreds=r(vpreds), old_values=r(old_values), returns=r(returns),
                                   mask=r(inp["mask"]), clip=0.5)
    fixture["value_cases"] = []
    for agg in ["token-mean", "seq-mean-token-mean"]:
        loss, clipfrac, grad = value_loss(vpreds, old_values, returns, inp["mask"], 0.5, agg)
        fixture["value_cases"].append(dict(agg=agg, loss=loss, clipfrac=clipfrac, grad_vpreds=r(grad)))

    # Advantage estimators on token rewards with the outcome on the last token.
    mask = inp["mask"]
    scores = np.array([1.0, 0.0, 0.5, 1.0])
    rewards = np.zeros((B, T))
    for b, n in enumerate(LENGTHS):
        rewards[b, n - 1] = scores[b]
    rewards = rewards - 0.05 * rng.normal(0.0, 1.0, size=(B, T)) * mask  # a KL-in-reward-like term
    values = rng.normal(0.0, 0.5, size=(B, T))
    rpp_adv, rpp_ret = reinforce_pp(rewards, mask, 0.99)
    gae_adv, gae_ret = gae(rewards, values, mask, 0.99, 0.95)
    fixture["advantages"] = dict(
        token_rewards=r(rewards), values=r(values), mask=r(mask), gamma=0.99, lam=0.95,
        reinforce_pp=dict(advantages=r(rpp_adv), returns=r(rpp_ret)),
        gae=dict(advantages=r(gae_adv), returns=r(gae_ret)),
        scores=r([0.3, 1.0, 0.0, 0.7, 0.2, 0.9]), groups=[0, 0, 0, 1, 1, 2],
    )
    s6 = np.array(fixture["advantages"]["scores"])
    g6 = fixture["advantages"]["groups"]
    fixture["advantages"]["grpo"] = r(grpo(s6, g6))
    fixture["advantages"]["dr_grpo"] = r(grpo(s6, g6, divide_by_std=False))
    fixture["advantages"]["rloo"] = r(rloo(s6, g6))
    print(f"policy cases: {len(fixture['policy_cases'])}, worst finite-difference error {worst:.2e}")
    return fixture


# ---------------------------------------------------------------- AdamW via torch
def build_adamw_fixture():
    try:
        import torch
    except ImportError:
        print("torch not importable: adamw.json not regenerated")
        return None
    torch.manual_seed(0)
    shapes = {"w": (3, 4), "b": (5,)}
    init = {k: torch.randn(s, dtype=torch.float32) for k, s in shapes.items()}
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    cfg = dict(lr=0.01, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.1, max_grad_norm=1.0)
    opt = torch.optim.AdamW(list(params.values()), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                            eps=cfg["eps"], weight_decay=cfg["weight_decay"], foreach=False)
    # Step 1: big gradients (clipped); step 2: small ones (not clipped) and `b` without a
    # gradient; step 3: mixed, with a different lr (a schedule).
    plan = [(3.0, ["w", "b"], 0.01), (0.05, ["w"], 0.01), (0.4, ["w", "b"], 0.005)]
    steps = []
    for scale, with_grad, lr in plan:
        for g in opt.param_groups:
            g["lr"] = lr
        grads = {}
        for k, p in params.items():
            if k in with_grad:
                grads[k] = (torch.randn(shapes[k]) * scale).to(torch.float32)
                p.grad = grads[k].clone()
            else:
                p.grad = None
        norm = torch.nn.utils.clip_grad_norm_([p for p in params.values() if p.grad is not None],
                                              cfg["max_grad_norm"])
        opt.step()
        steps.append(dict(lr=lr, grads={k: v.flatten().tolist() for k, v in grads.items()},
                          grad_norm=float(norm),
                          params_after={k: p.detach().flatten().tolist() for k, p in params.items()}))
    return dict(description=f"torch {torch.__version__} AdamW(foreach=False) + clip_grad_norm_",
                config=cfg, shapes={k: list(s) for k, s in shapes.items()},
                init={k: v.flatten().tolist() for k, v in init.items()}, steps=steps)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "losses.json"), "w") as f:
        json.dump(build_loss_fixture(), f)
    adamw = build_adamw_fixture()
    if adamw is not None:
        with open(os.path.join(OPTIM_OUT_DIR, "adamw.json"), "w") as f:
            json.dump(adamw, f, indent=1)
    print("wrote", os.path.normpath(OUT_DIR))


if __name__ == "__main__":
    main()
