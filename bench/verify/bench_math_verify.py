#!/usr/bin/env python3
"""Time Python Math-Verify on the verifier dev cases and report its agreement with the labels.

Run with the reference venv:  /opt/refvenv/bin/python bench/verify/bench_math_verify.py
Elsewhere:                    python -m venv /tmp/mv && /tmp/mv/bin/pip install math-verify
                              /tmp/mv/bin/python bench/verify/bench_math_verify.py

Each case is checked the way Math-Verify's README recommends: gold = parse(gold),
answer = parse(prediction), verify(gold, answer). Cases with `options` use the matching
Math-Verify settings (float_rounding for "precision", StringExtractionConfig for choices).
Math-Verify's own per-call timeout is left at its default. Prints one JSON object.
"""
import argparse
import json
import os
import sys
import time

from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify


def default_cases():
    shared = os.environ.get("ONESHOT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    return os.path.join(shared, "data", "verifier", "dev_cases.jsonl")


def check(case):
    opts = case.get("options") or {}
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    if "string_extraction" in opts:
        strings = tuple(opts["string_extraction"].get("strings", ()))
        configs = [StringExtractionConfig(strings=strings)] + configs
    gold = parse(case["gold"], extraction_config=configs)
    pred = parse(case["prediction"], extraction_config=configs)
    kwargs = {}
    if "precision" in opts:
        kwargs["float_rounding"] = opts["precision"]
    return bool(verify(gold, pred, **kwargs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=default_cases())
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with open(args.cases) as f:
        cases = [json.loads(l) for l in f if l.strip()]
    # Warm-up (imports, sympy caches) is excluded from the timing but its verdicts are kept.
    verdicts = [check(c) for c in cases]
    agree = sum(v == c["expected"] for v, c in zip(verdicts, cases))
    per_category = {}
    for v, c in zip(verdicts, cases):
        a, n = per_category.get(c["category"], (0, 0))
        per_category[c["category"]] = (a + (v == c["expected"]), n + 1)
    t = time.perf_counter()
    for _ in range(args.repeat):
        for c in cases:
            check(c)
    elapsed = time.perf_counter() - t
    checks = len(cases) * args.repeat
    print(json.dumps({
        "checker": "math-verify",
        "cases": len(cases), "repeat": args.repeat, "checks": checks,
        "agree": agree, "agreement": agree / len(cases),
        "single_thread_s": elapsed, "single_thread_us_per_check": 1e6 * elapsed / checks,
        "python": sys.version.split()[0],
        "per_category": {k: f"{a}/{n}" for k, (a, n) in sorted(per_category.items())},
    }))


if __name__ == "__main__":
    main()
