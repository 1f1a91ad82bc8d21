#!/usr/bin/env python3
"""Differential test of the oneshot checker against Math-Verify on generated answer pairs.

Golds are the answers of the six benchmarks (../shared/data/benchmarks/*/test.jsonl) and of the
training pool (../shared/data/train/*.parquet). Each gold is rewritten into equal forms (labelled
equal by construction: fraction spellings, decimals, radicals, percent, intervals, sets, tuples,
matrices, units, `x =` prefixes, LaTeX spacing and sizing, a box inside a prose sentence) and into
near misses (labelled not equal: a changed number, a changed bracket, a flipped sign, a dropped or
changed element). Both checkers judge every pair; the summary gives, per family, how often each
agrees with the label and how often the two disagree, and on the near misses the false-reward
rate of each.

Math-Verify is used here only, never at run time. Run with a Python that has `math-verify` and
`pyarrow` (python -m venv /tmp/mv && /tmp/mv/bin/pip install math-verify pyarrow):

  /tmp/mv/bin/python scripts/diff_math_verify.py --out /tmp/diffmv \
      [--ours target/release/examples/check_jsonl] [--old /tmp/verify-old-target/release/examples/check_jsonl]

`--ours`/`--old` are builds of `cargo build --release -p oneshot-verify --example check_jsonl`
(the current tree, and optionally an older commit's for a before/after table). The pairs are
seeded (`--seed`), so a rerun generates the same set.
"""
import argparse
import ast
import glob
import json
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_dir():
    return os.environ.get("ONESHOT_SHARED", os.path.join(ROOT, "..", "shared"))


def last_boxed(text):
    i = text.rfind("\\boxed{")
    if i < 0:
        return None
    j, depth = i + len("\\boxed{"), 1
    start = j
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[start:j - 1] if depth == 0 else None


def benchmark_golds():
    out = []
    for path in sorted(glob.glob(os.path.join(shared_dir(), "data", "benchmarks", "*", "test.jsonl"))):
        bench = os.path.basename(os.path.dirname(path))
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if "final_answer" in row:  # olympiadbench: a list, possibly as a string
                    fa = row["final_answer"]
                    if isinstance(fa, str):
                        fa = ast.literal_eval(fa) if fa.startswith("[") else [fa]
                    gold = ", ".join(str(x).strip("$ ") for x in fa)
                elif "answer" in row:
                    gold = str(row["answer"])
                else:  # minerva: the boxed answer of the reference solution
                    gold = last_boxed(row.get("solution", ""))
                if gold:
                    # Olympiad answers carry their own `$` delimiters (`$8$,$4$`).
                    gold = gold.replace("\\$", "").replace("$", "").strip()
                    out.append((f"{bench}:{line_no}", gold))
    return out


def train_golds():
    import pyarrow.parquet as pq

    out = []
    for path in sorted(glob.glob(os.path.join(shared_dir(), "data", "train", "*.parquet"))):
        name = os.path.basename(path)
        for k, row in enumerate(pq.read_table(path, columns=["reward_model"]).to_pylist()):
            rm = row["reward_model"]
            if isinstance(rm, str):
                rm = ast.literal_eval(rm)
            gt = rm.get("ground_truth") if isinstance(rm, dict) else None
            if gt:
                out.append((f"{name}:{k}", str(gt).strip()))
    return out


# ---------------------------------------------------------------- rewrites (labelled equal)

NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")


def is_int(s):
    return re.fullmatch(r"-?\d+", s) is not None


def is_number(s):
    return re.fullmatch(r"-?\d+(\.\d+)?", s) is not None


def r_frac_style(g, rng):
    if not FRAC.search(g):
        return None
    style = rng.choice(["\\dfrac{%s}{%s}", "\\tfrac{%s}{%s}", "%s/%s", "\\frac %s %s"])
    if style == "\\frac %s %s":
        if not all(len(x) == 1 for m in FRAC.finditer(g) for x in m.groups()):
            style = "\\dfrac{%s}{%s}"
    if style == "%s/%s" and FRAC.fullmatch(g) is None:
        style = "\\dfrac{%s}{%s}"
    return FRAC.sub(lambda m: style % (m.group(1), m.group(2)), g)


def r_decimal(g, rng):
    m = FRAC.fullmatch(g)
    if m:
        n, d = int(m.group(1)), int(m.group(2))
        dd = d
        for p in (2, 5):
            while dd % p == 0:
                dd //= p
        if dd != 1 or d == 0:
            return None
        s = f"{n / d:.10f}".rstrip("0").rstrip(".")
        return s
    if is_int(g):
        return rng.choice([f"{g}.0", f"{g}.00"])
    if is_number(g) and "." in g:
        return g + "0"
    return None


def r_radical(g, rng):
    m = re.search(r"\\sqrt\{(\d+)\}", g)
    if not m:
        return None
    n = m.group(1)
    # After a coefficient (`2\sqrt{2}`) the power needs a visible product: `2 \cdot 2^{1/2}`.
    base = f"\\cdot {n}" if g[:m.start()].rstrip()[-1:].isdigit() else n
    repl = rng.choice([f"\\sqrt {n}" if len(n) == 1 else f"\\sqrt{{{n}}}", f"{base}^{{1/2}}",
                       f"{base}^{{\\frac{{1}}{{2}}}}"])
    return g[:m.start()] + repl + g[m.end():]


def r_percent(g, rng):
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*\\?%", g)
    if m:
        return rng.choice([f"{m.group(1)}\\%", f"{m.group(1)}\\ \\%", f"{m.group(1)}\\text{{ percent}}"])
    return None


def r_interval(g, rng):
    if not re.fullmatch(r"[\[(].*,.*[\])]", g) or g.count(",") != 1:
        return None
    o, body, c = g[0], g[1:-1], g[-1]
    a, b = body.split(",")
    return f"\\left{o} {a.strip()} , {b.strip()} \\right{c}"


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def r_set(g, rng):
    m = re.fullmatch(r"\\\{(.*)\\\}", g)
    inner = m.group(1) if m else None
    if inner is None:
        return None
    items = split_top(inner)
    if len(items) < 2:
        return None
    rng.shuffle(items)
    return "\\{" + ", ".join(items) + "\\}"


def r_list_order(g, rng):
    if g.startswith(("(", "[", "\\{", "\\left")) or "=" in g:
        return None
    items = split_top(g)
    if len(items) < 2 or any(not i for i in items):
        return None
    # `11,\!090` and `2,600` are numbers with thousands separators, not lists.
    if "\\!" in g or any(re.fullmatch(r"\d{3}(\.\d+)?", i) for i in items[1:]):
        return None
    items = items[::-1]
    return ", ".join(items)


def r_tuple(g, rng):
    if not (g.startswith("(") and g.endswith(")")) or g.count(",") < 2:
        return None
    items = split_top(g[1:-1])
    return "\\left( " + " ,\\ ".join(items) + " \\right)"


def r_matrix(g, rng):
    if "matrix}" not in g:
        return None
    kinds = ["pmatrix", "bmatrix"]
    for k in kinds:
        if "\\begin{" + k + "}" in g:
            other = kinds[1 - kinds.index(k)]
            return g.replace(k, other)
    return None


def r_units(g, rng):
    if not is_number(g):
        return None
    return g + rng.choice(["\\text{ cm}", "\\ \\text{meters}", " \\mbox{ units}", "\\text{ dollars}"])


def r_prefix(g, rng):
    if re.search(r"[=,<>]|\\(in|le|ge|ne|div|text)", g):
        return None
    return rng.choice(["x = ", "n=", "a = ", "k = "]) + g


def r_styling(g, rng):
    if "\\text" in g or "\\!" in g:
        return None
    out = g.replace("(", "\\left(").replace(")", "\\right)") if "\\left" not in g else g
    out = out.replace(",", ",\\,").replace("+", " \\!+\\! ")
    out = rng.choice(["\\displaystyle ", "", "\\textstyle "]) + out
    return out if out != g else "\\, " + g


def r_prose(g, rng):
    return None  # handled by wrapping (see PREDICTION_WRAPS)


REWRITES = {
    "fraction": r_frac_style,
    "decimal": r_decimal,
    "radical": r_radical,
    "percent": r_percent,
    "interval": r_interval,
    "set": r_set,
    "list order": r_list_order,
    "tuple": r_tuple,
    "matrix": r_matrix,
    "units": r_units,
    "x= prefix": r_prefix,
    "latex styling": r_styling,
}

# ---------------------------------------------------------------- near misses (labelled not equal)


def n_number(g, rng):
    nums = list(NUM.finditer(g))
    if not nums:
        return None
    m = rng.choice(nums)
    s = m.group(0)
    if "." in s:
        a, b = s.split(".")
        k = rng.randrange(len(b))
        d = (int(b[k]) + rng.choice([1, 2, 3])) % 10
        new = f"{a}.{b[:k]}{d}{b[k + 1:]}"
    else:
        v = int(s)
        new = str(v + rng.choice([1, -1, 2, 10]) if abs(v) > 1 else v + 2)
    if new == s:
        return None
    return g[:m.start()] + new + g[m.end():]


def n_bracket(g, rng):
    if not re.fullmatch(r"[\[(].*[\])]", g) or g.count(",") != 1:
        return None
    swap = {"(": "[", "[": "(", ")": "]", "]": ")"}
    if rng.random() < 0.5:
        return swap[g[0]] + g[1:]
    return g[:-1] + swap[g[-1]]


def n_sign(g, rng):
    if g.startswith("-"):
        return g[1:]
    if re.match(r"[\d\\(]", g) and not g.startswith("\\{") and "," not in g:
        # a nonzero value only: -0 is 0
        if re.fullmatch(r"0+(\.0+)?", g):
            return None
        return "-" + (g if re.fullmatch(r"[\w.]+|\\frac\{[^{}]*\}\{[^{}]*\}|\\sqrt\{[^{}]*\}", g) else f"({g})")
    if " + " in g:
        return g.replace(" + ", " - ", 1)
    return None


def n_element(g, rng):
    inner, wrap = g, ("", "")
    if g.startswith("\\{") and g.endswith("\\}"):
        inner, wrap = g[2:-2], ("\\{", "\\}")
    elif g.startswith("(") and g.endswith(")") and g.count(",") >= 2:
        inner, wrap = g[1:-1], ("(", ")")
    items = split_top(inner)
    if len(items) < 2 or len(set(items)) != len(items):
        return None
    items.pop(rng.randrange(len(items)))
    return wrap[0] + ", ".join(items) + wrap[1]


def n_tuple_order(g, rng):
    if not (g.startswith("(") and g.endswith(")")):
        return None
    items = split_top(g[1:-1])
    if len(items) < 2 or len(set(items)) != len(items):
        return None
    return "(" + ", ".join(items[::-1]) + ")"


NEAR_MISSES = {
    "changed number": n_number,
    "changed bracket": n_bracket,
    "flipped sign": n_sign,
    "dropped element": n_element,
    "tuple reordered": n_tuple_order,
}

PREDICTION_WRAPS = [
    ("boxed", "The answer is $\\boxed{%s}$."),
    ("boxed", "$\\boxed{%s}$"),
    ("prose box", "Putting everything together, the final answer is $\\boxed{%s}$. I hope it is correct."),
]


def generate(seed, max_golds, variants):
    rng = random.Random(seed)
    golds = benchmark_golds() + train_golds()
    seen, unique = set(), []
    for src, g in golds:
        # A gold with unbalanced braces cannot be boxed into a well-formed response.
        if g not in seen and len(g) < 300 and g.count("{") == g.count("}"):
            seen.add(g)
            unique.append((src, g))
    rng.shuffle(unique)
    unique = unique[:max_golds]
    pairs, seen_pairs = [], set()

    def add(fam, kind, src, g, pred, expected):
        if (pred, g) not in seen_pairs:
            seen_pairs.add((pred, g))
            pairs.append(dict(family=fam, kind=kind, source=src, gold=g, prediction=pred, expected=expected))

    for src, g in unique:
        for _ in range(variants):
            # The identity, wrapped like a response, checks extraction itself.
            wname, wrap = rng.choice(PREDICTION_WRAPS)
            add(wname, "equal", src, g, wrap % g, True)
            for fam, fn in REWRITES.items():
                p = fn(g, rng)
                if p is not None and p != g:
                    # Rewrites are boxed, some inside a sentence.
                    _, wrap = rng.choice(PREDICTION_WRAPS)
                    add(fam, "equal", src, g, wrap % p, True)
            for fam, fn in NEAR_MISSES.items():
                p = fn(g, rng)
                if p is not None and p != g:
                    _, wrap = rng.choice(PREDICTION_WRAPS)
                    add(fam, "near miss", src, g, wrap % p, False)
    return pairs


# ---------------------------------------------------------------- checkers


def mv_check(pair):
    from math_verify import parse, verify

    try:
        gold = parse("$" + pair["gold"] + "$")
        pred = parse(pair["prediction"])
        return bool(verify(gold, pred))
    except Exception:  # a crash of the reference is a "not equal"
        return False


def run_math_verify(pairs, procs):
    with mp.Pool(procs) as pool:
        return pool.map(mv_check, pairs, chunksize=64)


def run_ours(binary, pairs, path):
    with open(path, "w") as f:
        for p in pairs:
            f.write(json.dumps({"prediction": p["prediction"], "gold": p["gold"]}) + "\n")
    out = subprocess.run([binary, path], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.strip()]
    if len(rows) != len(pairs):
        sys.exit(f"{binary}: {len(rows)} verdicts for {len(pairs)} pairs")
    return [r["correct"] for r in rows]


def summarise(pairs, verdicts):
    """verdicts: name -> list of bools. Returns per-family rows and totals."""
    fams = defaultdict(list)
    for i, p in enumerate(pairs):
        fams[(p["kind"], p["family"])].append(i)
    fams[("all", "equal pairs")] = [i for i, p in enumerate(pairs) if p["expected"]]
    fams[("all", "near misses")] = [i for i, p in enumerate(pairs) if not p["expected"]]
    rows = []
    for (kind, fam), idx in sorted(fams.items()):
        row = {"kind": kind, "family": fam, "pairs": len(idx)}
        for name, v in verdicts.items():
            wrong = sum(v[i] != pairs[i]["expected"] for i in idx)
            row[f"{name}_wrong"] = wrong
        for name in verdicts:
            if name != "math_verify":
                row[f"{name}_vs_mv_disagree"] = sum(verdicts[name][i] != verdicts["math_verify"][i] for i in idx)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--max-golds", type=int, default=4000)
    ap.add_argument("--variants", type=int, default=6, help="rewrites drawn per gold and family")
    ap.add_argument("--out", default="/tmp/diffmv")
    ap.add_argument("--ours", default=os.path.join(ROOT, "target", "release", "examples", "check_jsonl"))
    ap.add_argument("--old", help="check_jsonl built from an older commit, for a before column")
    ap.add_argument("--procs", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--summary", default=os.path.join(ROOT, "bench", "verify", "differential.json"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    pairs = generate(args.seed, args.max_golds, args.variants)
    print(f"{len(pairs)} pairs", file=sys.stderr)
    verdicts = {"ours": run_ours(args.ours, pairs, os.path.join(args.out, "pairs.jsonl"))}
    if args.old:
        verdicts["old"] = run_ours(args.old, pairs, os.path.join(args.out, "pairs.jsonl"))
    # Math-Verify's verdicts are cached per pair: a rerun after a generator change only checks
    # the new pairs.
    mv_cache = os.path.join(args.out, "math_verify_cache.json")
    cache = json.load(open(mv_cache)) if os.path.exists(mv_cache) else {}
    key = lambda p: json.dumps([p["prediction"], p["gold"]])
    todo = [p for p in pairs if key(p) not in cache]
    for p, v in zip(todo, run_math_verify(todo, args.procs) if todo else []):
        cache[key(p)] = v
    json.dump(cache, open(mv_cache, "w"))
    verdicts["math_verify"] = [cache[key(p)] for p in pairs]
    rows = summarise(pairs, verdicts)
    # Every disagreement between ours and Math-Verify, for triage.
    with open(os.path.join(args.out, "disagreements.jsonl"), "w") as f:
        for i, p in enumerate(pairs):
            if verdicts["ours"][i] != verdicts["math_verify"][i]:
                rec = dict(p, ours=verdicts["ours"][i], math_verify=verdicts["math_verify"][i])
                if "old" in verdicts:
                    rec["old"] = verdicts["old"][i]
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    summary = {"seed": args.seed, "variants": args.variants, "pairs": len(pairs),
               "golds": len({p["gold"] for p in pairs}), "families": rows}
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=1)
    names = list(verdicts)
    print("kind\tfamily\tpairs\t" + "\t".join(f"{n} wrong" for n in names) + "\t"
          + "\t".join(f"{n}≠MV" for n in names if n != "math_verify"))
    for r in rows:
        print(f"{r['kind']}\t{r['family']}\t{r['pairs']}\t" + "\t".join(str(r[f'{n}_wrong']) for n in names)
              + "\t" + "\t".join(str(r[f'{n}_vs_mv_disagree']) for n in names if n != "math_verify"))


if __name__ == "__main__":
    main()
