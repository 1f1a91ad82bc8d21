#!/usr/bin/env python3
"""Turns the public test suites of other math checkers into labelled data for ours.

Every (prediction, gold, expected) triple in
  * huggingface/Math-Verify            tests/*.py
  * huggingface/latex2sympy2_extended  tests/*.py   (latex -> SymPy expression: gold = the
                                                    expression printed as LaTeX, expected true)
  * QwenLM/Qwen2.5-Math                evaluation/grader.py (the commented examples of
                                                    _test_math_equal, labelled here by hand)
is written, one JSON object per line, to crates/verify/tests/fixtures/peer_suites.jsonl with the
source of each triple. Nothing of their code lands in this repository: their test modules are
executed from a temporary export of the pinned commit against stand-ins for the libraries they
test, and the stand-ins only record what each assertion compares.

Usage (the git directories come from `git clone` or any mirror of the three repositories):
  python3 scripts/extract_peer_suites.py --math-verify DIR --latex2sympy DIR --qwen DIR [--out F]
Needs sympy and pytest (the parametrize marks are read from pytest's decorators).
"""
import argparse
import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import types

PINS = {
    "huggingface/Math-Verify": "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a",
    "huggingface/latex2sympy2_extended": "02999f5d79ec772a2445f3e5d4b02c57a8078022",
    "QwenLM/Qwen2.5-Math": "a45202bd16f1ec06f433442dc1152d0074773465",
}

# The Qwen2.5-Math harness lists its examples without verdicts. Labels by the editor of this
# fixture, by the mathematics (reason after each).
QWEN_LABELS = {
    ("0.0833333333333333", "\\frac{1}{12}"): (True, "1/12 rounded to 16 places"),
    ("(1,4.5)", "(1,\\frac{9}{2})"): (True, "9/2 = 4.5"),
    ("\\frac{x}{7}+\\frac{2}{7}", "\\frac{x+2}{7}"): (True, "same rational function"),
    ("\\sec^2(y)", "\\tan^2(y)+1"): (True, "Pythagorean identity"),
    ("(+5)(b+2)", "(a+5)(b+2)"): (False, "a is missing"),
    ("\\frac{1+\\sqrt{5}}{2}", "2"): (False, "1.618 != 2"),
    ("\\frac{34}{16}+\\frac{\\sqrt{1358}}{16}", "4"): (False, "4.43 != 4"),
    ("1", "1\\\\sqrt{19}"): (False, "gold is not 1"),
    ("(0.6,2.6667]", "(\\frac{3}{5},\\frac{8}{3}]"): (True, "endpoints rounded to 4 places"),
    ("x+1", "x+2n+1"): (False, "2n is missing"),
    ("-34x-45y+20z-100=0", "34x+45y-20z+100=0"): (True, "same plane"),
    ("\\frac{100}{3}", "33.3"): (True, "gold is 100/3 rounded to one place"),
    ("\\begin{pmatrix}-\\frac{7}{4}&-2\\\\4&\\frac{1}{4}\\end{pmatrix}",
     "(\\begin{pmatrix}-\\frac{7}{4}&-2\\\\4&\\frac{1}{4}\\\\\\end{pmatrix})"):
        (True, "same matrix; trailing row break and brackets are layout"),
    ("\\begin{pmatrix}\\frac{1}{3x^{2/3}}&0&0\\\\0&1&0\\\\-\\sin(x)&0&0\\end{pmatrix}",
     "(\\begin{pmatrix}\\frac{1}{3\\sqrt[3]{x}^2}&0&0\\\\0&1&0\\\\-\\sin(x)&0&0\\\\\\end{pmatrix})"):
        (True, "x^{2/3} = cbrt(x)^2"),
    ("\\begin{pmatrix}0.290243531202435\\\\0.196008371385084\\\\-0.186381278538813\\end{pmatrix}",
     "(\\begin{pmatrix}0.29\\\\0.196\\\\-0.186\\\\\\end{pmatrix})"):
        (True, "gold entries are the prediction's rounded to 2-3 places"),
    ("-\\frac{8x^2}{9(x^2-2)^{5/3}}+\\frac{2}{3(x^2-2)^{2/3}}",
     "-\\frac{2(x^2+6)}{9(x^2-2)\\sqrt[3]{x^2-2}^2}"): (True, "same function over 9(x^2-2)^{5/3}"),
    ("\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{2\\sqrt{33}+15}",
     "\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{15+2\\sqrt{33}}"): (True, "terms reordered"),
}


def export(gitdir, commit, paths, dest):
    """Writes the files under `paths` at `commit` into `dest` (no checkout needed)."""
    if os.path.isdir(os.path.join(gitdir, ".git")):
        gitdir = os.path.join(gitdir, ".git")
    archive = subprocess.run(
        ["git", "--git-dir", gitdir, "archive", commit, *paths],
        check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)


class Recorder:
    def __init__(self, repo):
        self.repo = repo
        self.rows = []
        self.skipped = []
        self.where = ""
        self.pending = []

    def add(self, prediction, gold, expected, options=None):
        row = {"prediction": prediction, "gold": gold, "expected": bool(expected),
               "source": f"{self.repo}@{PINS[self.repo][:7]} {self.where}"}
        if options:
            row["options"] = options
        self.rows.append(row)

    def settle(self, args):
        """A verdict that was never compared to a label (`int(verify(..)) == result`): the label
        is the test's own `expected`/`result` parameter."""
        label = next((args[k] for k in ("expected", "result") if k in args), None)
        for pred, gold, opts in self.pending:
            if label is not None:
                self.add(pred, gold, label, opts)
        self.pending = []

    def skip(self, why):
        self.skipped.append(f"{self.where}: {why}")


def run_tests(module, rec, relpath):
    """Calls every test function (and test-class method) of `module`, expanding parametrize."""
    def calls(fn, owner=None):
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        combos = [{}]
        for m in marks:
            names = [n.strip() for n in (m.args[0].split(",") if isinstance(m.args[0], str) else m.args[0])]
            new = []
            for c in combos:
                for k, vals in enumerate(m.args[1]):
                    vals = getattr(vals, "values", vals)
                    if len(names) == 1:
                        vals = (vals,)
                    d = dict(c)
                    d.update(zip(names, vals))
                    d["_i"] = f"{c.get('_i', '')}{k}"
                    new.append(d)
            combos = new
        return combos

    for name, obj in sorted(vars(module).items()):
        if name.startswith("test") and inspect.isfunction(obj):
            targets = [(name, obj, None)]
        elif name.startswith("Test") and inspect.isclass(obj):
            targets = [(f"{name}::{m}", getattr(obj(), m), obj)
                       for m in sorted(vars(obj)) if m.startswith("test")]
        else:
            continue
        for label, fn, owner in targets:
            combos = calls(fn, owner)
            params = list(inspect.signature(fn).parameters)
            # pytest_generate_tests hooks in these suites parametrize from class attributes.
            if owner is not None and params and combos == [{}]:
                pairs = getattr(owner, "GOOD_PAIRS", None)
                if pairs is None:
                    rec.where = f"{relpath}::{label}"
                    rec.skip("parse-failure test (no gold)")
                    continue
                combos = [dict(zip(params, p), _i=str(k)) for k, p in enumerate(pairs)]
            for c in combos:
                rec.where = f"{relpath}::{label}" + (f"[{c['_i']}]" if "_i" in c else "")
                args = {k: v for k, v in c.items() if k != "_i"}
                try:
                    fn(**args)
                    rec.settle(args)
                except BaseException as e:  # pytest.fail raises a BaseException
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    # an assertion we could not record
                    if rec.pending:
                        rec.settle(args)
                        continue
                    rec.skip(f"{type(e).__name__}: {str(e)[:80]}")


def math_verify(gitdir, rec):
    repo = rec.repo
    with tempfile.TemporaryDirectory() as tmp:
        export(gitdir, PINS[repo], ["tests"], tmp)
        stub = types.ModuleType("math_verify")
        grader = types.ModuleType("math_verify.grader")

        class Config:
            def __init__(self, kind, **kw):
                self.kind, self.kw = kind, kw

        stub.ExprExtractionConfig = lambda **kw: Config("expr", **kw)
        stub.LatexExtractionConfig = lambda **kw: Config("latex", **kw)
        stub.StringExtractionConfig = lambda **kw: Config("string", **kw)

        class Parsed:
            def __init__(self, text, targets):
                self.text, self.targets = text, targets or []

            def __eq__(self, expected):
                cfg = next((t for t in self.targets if t.kind == "string"), None)
                if cfg is None:
                    rec.skip("parse() compared without a verdict")
                    return True
                strings = list(cfg.kw.get("strings", ("A", "B", "C", "D")))
                if not expected:
                    rec.add(self.text, strings[0], False, {"choices": strings})
                else:
                    rec.add(self.text, expected[-1], True, {"choices": strings})
                return True

        class Verdict(int):
            def __new__(cls, gold, pred, kw):
                v = int.__new__(cls, 1)
                v.gold, v.pred, v.kw = gold, pred, kw
                v.entry = (pred.text, gold.text, v.options())
                rec.pending.append(v.entry)
                return v

            def __int__(self):
                return 1

            def options(self):
                opts = {}
                rounding = self.kw.get("float_rounding", 6)
                if rounding != 6:
                    opts["precision"] = rounding
                if self.kw.get("strict", True) is False:
                    opts["strict"] = False
                if self.kw.get("allow_set_relation_comp"):
                    opts["allow_set_relation_comp"] = True
                return opts

            def __eq__(self, expected):
                rec.pending.remove(self.entry)
                rec.add(self.pred.text, self.gold.text, expected, self.options())
                return True

            __hash__ = int.__hash__

        stub.parse = lambda text, targets=None, **kw: Parsed(text, targets)
        stub.verify = lambda gold, pred, **kw: Verdict(gold, pred, kw)

        def sympy_expr_eq(gold, pred, float_rounding=6, **kw):
            raise NotImplementedError("sympy-level comparison (recorded from the source)")

        grader.sympy_expr_eq = sympy_expr_eq
        stub.grader = grader
        sys.modules["math_verify"] = stub
        sys.modules["math_verify.grader"] = grader
        sys.path.insert(0, tmp)
        try:
            for f in sorted(os.listdir(os.path.join(tmp, "tests"))):
                if not (f.startswith("test_") and f.endswith(".py")):
                    continue
                if f in ("test_timeout.py", "test_raise_on_error.py", "test_configs.py"):
                    # Timeouts, exceptions and parser configuration: no (prediction, gold) pairs.
                    rec.where = f"tests/{f}"
                    rec.skip("no prediction/gold pairs")
                    continue
                mod = importlib.import_module(f"tests.{f[:-3]}")
                run_tests(mod, rec, f"tests/{f}")
                sympy_level_asserts(os.path.join(tmp, "tests", f), rec, f"tests/{f}")
        finally:
            sys.path.remove(tmp)
            for m in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
                del sys.modules[m]


def sympy_level_asserts(path, rec, relpath):
    """`assert [not] sympy_expr_eq(Rational(..), Float(..), float_rounding=n)`: the gold value
    printed as a fraction, the prediction as the decimal, `precision` = n."""
    import sympy
    tree = ast.parse(open(path).read())
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Assert):
                continue
            test, expected = node.test, True
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                test, expected = test.operand, False
            if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Call)
                    and ast.unparse(test.left.func) == "compare_strings"
                    and all(isinstance(a, ast.Constant) for a in test.left.args)):
                call = test.left
                kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                rec.where = f"{relpath}::{fn.name} (line {node.lineno})"
                opts = {"precision": kw["precision"]} if kw.get("precision", 6) != 6 else None
                rec.add(ast.literal_eval(call.args[1]), ast.literal_eval(call.args[0]),
                        ast.literal_eval(test.comparators[0]), opts)
                continue
            if not (isinstance(test, ast.Call) and ast.unparse(test.func) == "sympy_expr_eq"):
                continue
            env = {"sympy": sympy}
            gold = eval(ast.unparse(test.args[0]), env)
            pred = eval(ast.unparse(test.args[1]), env)
            kw = {k.arg: ast.literal_eval(k.value) for k in test.keywords}
            rec.where = f"{relpath}::{fn.name} (line {node.lineno})"
            rec.add(str(float(pred)), sympy.latex(gold), expected,
                    {"precision": kw.get("float_rounding", 6)})


def latex2sympy(gitdir, rec):
    import sympy
    repo = rec.repo
    with tempfile.TemporaryDirectory() as tmp:
        export(gitdir, PINS[repo], ["tests"], tmp)

        greek = re.compile(r"^(alpha|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa|lambda|mu"
                           r"|nu|xi|rho|sigma|tau|upsilon|phi|chi|psi|omega)(?=_|$)")

        def symbol_latex(name):
            # SymPy prints a symbol whose name it cannot split (`lambda_{23}`, `bar{x}_n`) as
            # the raw name; write it back as the LaTeX the test's input meant.
            name = greek.sub(r"\\\1", name)
            return re.sub(r"^bar\{", r"\\bar{", name)

        def render(expr):
            if isinstance(expr, str):
                return expr
            try:
                names = {s: symbol_latex(s.name) for s in getattr(expr, "free_symbols", ())
                         if isinstance(s, sympy.Symbol)}
                return sympy.latex(expr, symbol_names=names)
            except Exception:
                return str(expr)

        class Probe:
            """What latex2sympy() returns here: equality with anything records the pair."""
            def __init__(self, latex):
                self.latex = latex

            def __eq__(self, other):
                gold = other.latex if isinstance(other, Probe) else render(other)
                rec.add(self.latex, gold, True)
                return True

            __hash__ = object.__hash__

            def doit(self):
                return self

        pkg = types.ModuleType("latex2sympy2_extended")
        pkg.__path__ = []
        inner = types.ModuleType("latex2sympy2_extended.latex2sympy2")
        norm = types.ModuleType("latex2sympy2_extended.math_normalization")
        pkg.latex2sympy = inner.latex2sympy = lambda s, **kw: Probe(s)

        class NormalizationConfig:
            def __init__(self, **kw):
                self.kw = kw

        norm.NormalizationConfig = NormalizationConfig
        norm.normalize_latex = lambda s, config=None: Probe(s)
        for m in (pkg, inner, norm):
            sys.modules[m.__name__] = m
        sys.path.insert(0, tmp)
        try:
            ctx = importlib.import_module("tests.context")

            def assert_equal(latex, expr, symbolically=False, variables=None):
                if variables:
                    rec.skip("placeholder variables")
                    return
                rec.add(latex, render(expr), True)

            ctx.assert_equal = assert_equal
            for f in sorted(os.listdir(os.path.join(tmp, "tests"))):
                if not f.endswith("_test.py"):
                    continue
                mod = importlib.import_module(f"tests.{f[:-3]}")
                run_tests(mod, rec, f"tests/{f}")
        finally:
            sys.path.remove(tmp)
            for m in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
                del sys.modules[m]


def qwen(gitdir, rec):
    repo = rec.repo
    if os.path.isdir(os.path.join(gitdir, ".git")):
        gitdir = os.path.join(gitdir, ".git")
    src = subprocess.run(["git", "--git-dir", gitdir, "show", f"{PINS[repo]}:evaluation/grader.py"],
                         check=True, capture_output=True, text=True).stdout
    first_line = src[:src.index("def _test_math_equal")].count("\n") + 1
    body = src[src.index("def _test_math_equal"):]
    lit = r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    pairs = []
    for line_no, line in enumerate(body.splitlines()):
        text = line.strip().lstrip("#").strip()
        m = re.match(rf"print\(math_equal\({lit},\s*{lit}", text)
        if m:
            pairs.append((ast.literal_eval(m[1]), ast.literal_eval(m[2]), line_no))
            continue
        for m in re.finditer(rf"pred\s*=\s*{lit}\s*,?\s*gt\s*=\s*{lit}", text):
            pairs.append((ast.literal_eval(m[1]), ast.literal_eval(m[2]), line_no))
        m = re.match(rf"(pred|gt)\s*=\s*{lit}\s*$", text)
        if m:
            pairs.append((m[1], ast.literal_eval(m[2]), line_no))
    # Join `pred = ...` / `gt = ...` lines (either order) into pairs.
    out, pending = [], {}
    for a, b, ln in pairs:
        if a in ("pred", "gt"):
            pending[a] = b
            if len(pending) == 2:
                out.append((pending["pred"], pending["gt"], ln))
                pending = {}
        else:
            out.append((a, b, ln))
    for pred, gt, ln in out:
        rec.where = f"evaluation/grader.py::_test_math_equal (line {first_line + ln})"
        label = QWEN_LABELS.get((pred, gt))
        if label is None:
            rec.skip(f"unlabelled example {pred!r} vs {gt!r}")
            continue
        rec.add(pred, gt, label[0])
        rec.rows[-1]["note"] = label[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--math-verify", required=True)
    ap.add_argument("--latex2sympy", required=True)
    ap.add_argument("--qwen", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..",
                                                   "crates/verify/tests/fixtures/peer_suites.jsonl"))
    a = ap.parse_args()
    rows, skipped = [], []
    for repo, path, fn in (("huggingface/Math-Verify", a.math_verify, math_verify),
                           ("huggingface/latex2sympy2_extended", a.latex2sympy, latex2sympy),
                           ("QwenLM/Qwen2.5-Math", a.qwen, qwen)):
        rec = Recorder(repo)
        fn(path, rec)
        print(f"{repo}@{PINS[repo][:7]}: {len(rec.rows)} triples, {len(rec.skipped)} skipped",
              file=sys.stderr)
        rows += rec.rows
        skipped += [f"{repo}: {s}" for s in rec.skipped]
    with open(a.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    for s in skipped:
        print("  skipped", s, file=sys.stderr)
    print(f"wrote {len(rows)} triples to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
