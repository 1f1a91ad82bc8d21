#!/usr/bin/env bash
# Times our checker (single thread and all cores) and Python Math-Verify on the same labelled
# cases, printing both agreement rates and the speed ratio.
#   bench/verify/run.sh [CASES_FILE] [REPEAT]
# Python: $PYTHON, else /opt/refvenv/bin/python, else a throwaway venv with math-verify.
set -euo pipefail
cd "$(dirname "$0")/../.."
CASES="${1:-${ONESHOT_SHARED:-../shared}/data/verifier/dev_cases.jsonl}"
REPEAT="${2:-20}"
PY="${PYTHON:-/opt/refvenv/bin/python}"
if ! "$PY" -c "import math_verify" 2>/dev/null; then
  VENV="$(mktemp -d)/mv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet math-verify
  PY="$VENV/bin/python"
fi
cargo build --release -p oneshot >/dev/null
OURS="$(./target/release/oneshot bench verify --cases "$CASES" --repeat "$REPEAT" --json)"
THEIRS="$("$PY" bench/verify/bench_math_verify.py --cases "$CASES" --repeat 1)"
echo "oneshot:     $OURS"
echo "math-verify: $THEIRS"
python3 - "$OURS" "$THEIRS" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"agreement: oneshot {100*ours['agreement']:.2f}%  math-verify {100*theirs['agreement']:.2f}%")
r1 = theirs["single_thread_us_per_check"] / ours["single_thread_us_per_check"]
r2 = theirs["single_thread_us_per_check"] / ours["all_cores_us_per_check"]
print(f"speed-up: single thread {r1:.0f}x, all cores ({ours['all_cores_threads']} threads) {r2:.0f}x")
PY
