#!/usr/bin/env python3
"""Markdown tables of a lab study's demo runs (scripts/lab_study.sh OUT): for the quick, full and
lora pieces, per seed and mean +- sample std over the seeds found, the held-out numbers on the
families other than pi_1's (strict, lenient, boxed, direct, slip; base -> after), and for each
run the step at which pi_1 saturated and the held-out curve after it.

    python3 scripts/lab_study_table.py OUT [quick full lora]
"""
import json
import statistics
import sys
from pathlib import Path


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return pct(xs[0])
    return f"{100 * statistics.mean(xs):.1f} ± {100 * statistics.stdev(xs):.1f}"


def load(out, piece):
    runs = []
    for seed in range(3):
        path = Path(out) / f"{piece}-s{seed}" / "summary.json"
        if path.exists():
            runs.append((seed, json.loads(path.read_text())))
    return runs


def rate(side, key):
    """A rate of one side; the slip rate (a share of worked responses) is None without any."""
    if key == "slip" and side.get("worked_n", 1) == 0:
        return None
    return side[key]


def headline(piece, runs):
    keys = ["strict", "lenient", "boxed", "direct", "slip"]
    print(f"### {piece}: families other than pi_1's, base -> after (%)\n")
    print("| seed | pi_1 | wall s | " + " | ".join(keys) + " | strict gain | lenient gain |")
    print("|---|---|---:|" + "---:|" * (len(keys) + 2))
    rows = []
    for seed, s in runs:
        o = s["other_families"]
        pi1 = s["pi1"]
        cells = [f"{pct(rate(o['base'], k))} -> {pct(rate(o['one_shot'], k))}" for k in keys]
        rows.append(o)
        print(
            f"| {seed} | {pi1['index']} ({pi1['family']}) | {s['wall_seconds']:.0f} | "
            + " | ".join(cells)
            + f" | {pct(o['strict_gain'])} | {pct(o['lenient_gain'])} |"
        )
    if len(runs) > 1:
        cells = [
            f"{mean_std([rate(o['base'], k) for o in rows])} -> "
            f"{mean_std([rate(o['one_shot'], k) for o in rows])}"
            for k in keys
        ]
        print(
            "| mean ± std | | | "
            + " | ".join(cells)
            + f" | {mean_std([o['strict_gain'] for o in rows])}"
            + f" | {mean_std([o['lenient_gain'] for o in rows])} |"
        )
    print()


def saturation(piece, runs):
    print(f"### {piece}: held-out (other families, first curve problems) after pi_1 saturates\n")
    for seed, s in runs:
        post = s.get("post_saturation")
        if not post:
            print(f"- seed {seed}: pi_1 did not reach {s.get('saturation_threshold')}\n")
            continue
        pts = [post["at"]] + post["after"]
        steps = " | ".join(str(p["step"]) for p in pts)
        print(f"seed {seed}: saturated at step {post['step']}\n")
        print(f"| step | {steps} |")
        print("|---|" + "---:|" * len(pts))
        print("| strict | " + " | ".join(pct(p["other_strict"]) for p in pts) + " |")
        print("| lenient | " + " | ".join(pct(p["other_lenient"]) for p in pts) + " |")
        curve = {c["step"]: c for c in s["test_curve"]}
        slips = [
            rate(curve[p["step"]]["other_families"], "slip") if p["step"] in curve else None
            for p in pts
        ]
        print("| slip | " + " | ".join(pct(x) for x in slips) + " |")
        print()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    pieces = sys.argv[2:] or ["quick", "full", "lora"]
    for piece in pieces:
        runs = load(out, piece)
        if not runs:
            continue
        headline(piece, runs)
        saturation(piece, runs)


if __name__ == "__main__":
    main()
