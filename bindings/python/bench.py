#!/usr/bin/env python3
"""Times oneshot_verify.verify_batch against Math-Verify's own Python loop (parse + verify per
pair, as its README shows) on the labelled dev cases, and prints both agreement rates and the
speed-up.  python bindings/python/bench.py [CASES] [--repeat N]   (needs math-verify)"""
import argparse
import json
import os
import platform
import sys
import time

# Import the installed package, not the source folder beside this script (no native module).
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import oneshot_verify as ov  # noqa: E402


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    shared = os.environ.get("ONESHOT_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="?", default=os.path.join(shared, "data/verifier/dev_cases.jsonl"))
    ap.add_argument("--repeat", type=int, default=50)
    a = ap.parse_args()
    cases = [json.loads(l) for l in open(a.cases) if l.strip()]
    cases = [c for c in cases if not c.get("options")]  # one option set for the whole batch
    preds = [c["prediction"] for c in cases]
    golds = [c["gold"] for c in cases]
    labels = [c["expected"] for c in cases]

    ours = ov.verify_batch(preds, golds)  # warm-up (thread pool)
    t = time.perf_counter()
    for _ in range(a.repeat):
        ours = ov.verify_batch(preds, golds)
    ours_us = (time.perf_counter() - t) / (a.repeat * len(cases)) * 1e6

    from math_verify import parse, verify
    t = time.perf_counter()
    theirs = []
    for p, g in zip(preds, golds):
        try:
            theirs.append(bool(verify(parse(g), parse(p))))
        except Exception:
            theirs.append(False)
    theirs_us = (time.perf_counter() - t) / len(cases) * 1e6

    agree = lambda v: sum(x == y for x, y in zip(v, labels)) / len(labels)
    print(json.dumps({
        "cases": len(cases),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "oneshot_verify_batch_us_per_check": round(ours_us, 2),
        "math_verify_loop_us_per_check": round(theirs_us, 1),
        "speedup": round(theirs_us / ours_us, 1),
        "agreement_oneshot": round(agree(ours), 4),
        "agreement_math_verify": round(agree(theirs), 4),
    }))


if __name__ == "__main__":
    main()
