#!/usr/bin/env python3
"""False rewards and misses of the oneshot checker and of Math-Verify on labelled JSONL files.

Each line holds `prediction`, `gold`, `expected` (and optionally `options`). A false reward is a
"correct" verdict on a case labelled wrong; a miss is the other way round. Math-Verify is called as
its README recommends (verify(parse(gold), parse(prediction))), with `precision` mapped to its
float_rounding and `choices` to a StringExtractionConfig.

  /tmp/mv/bin/python scripts/verify_error_kinds.py ../shared/data/verifier/dev_cases.jsonl \
      crates/verify/tests/fixtures/peer_suites.jsonl
"""
import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys

# Bare LaTeX (latex2sympy's test strings) is wrapped in `$...$` for Math-Verify's extraction.
WRAP_BARE = "--wrap-bare" in sys.argv
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mv_check(case):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    opts = case.get("options") or {}
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    choices = opts.get("choices") or (opts.get("string_extraction") or {}).get("strings")
    if choices:
        configs = [StringExtractionConfig(strings=tuple(choices))] + configs
    kwargs = {"float_rounding": opts["precision"]} if "precision" in opts else {}
    wrap = lambda s: s if not WRAP_BARE or any(d in s for d in ("$", "\\(", "\\[", "\\boxed")) else f"${s}$"
    try:
        gold = parse(wrap(case["gold"]), extraction_config=configs)
        pred = parse(wrap(case["prediction"]), extraction_config=configs)
        return bool(verify(gold, pred, **kwargs))
    except Exception:
        return False


def kinds(cases, verdicts):
    fr = sum(v and not c["expected"] for c, v in zip(cases, verdicts))
    miss = sum(c["expected"] and not v for c, v in zip(cases, verdicts))
    return {"cases": len(cases), "agree": len(cases) - fr - miss, "false_rewards": fr, "misses": miss,
            "labelled_wrong": sum(not c["expected"] for c in cases)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--ours", default=os.path.join(ROOT, "target", "release", "examples", "check_jsonl"))
    ap.add_argument("--wrap-bare", action="store_true", help="give Math-Verify bare LaTeX inside $...$")
    ap.add_argument("--procs", type=int, default=max(1, os.cpu_count() or 1))
    args = ap.parse_args()
    for path in args.files:
        with open(path) as f:
            cases = [json.loads(l) for l in f if l.strip()]
        out = subprocess.run([args.ours, path], check=True, capture_output=True, text=True).stdout
        ours = [json.loads(l)["correct"] for l in out.splitlines() if l.strip()]
        if len(ours) != len(cases):
            sys.exit(f"{path}: {len(ours)} verdicts for {len(cases)} cases")
        with mp.Pool(args.procs) as pool:
            theirs = pool.map(mv_check, cases, chunksize=16)
        print(json.dumps({"file": path, "oneshot": kinds(cases, ours), "math_verify": kinds(cases, theirs)}))


if __name__ == "__main__":
    main()
