#!/usr/bin/env bash
# The lab study behind docs/LAB.md's results, in resumable pieces: run it again after an
# interruption and it skips every piece whose output is complete (`selection` and `reproduce`
# resume their own tables run by run). Hours on 2 cores; each piece's command is printed.
#
#   cargo build --release -p oneshot
#   scripts/lab_study.sh OUT [PIECE...]
#
# PIECES (default: all, in this order): quick (the demo, seeds 0-2), selection (top/random/
# bottom 4, 3 seeds), full (the full budget, seeds 0-2), reproduce (the ablations, 3 seeds),
# lora (the demo with LoRA r=16, seeds 0-2). MODEL=DIR trains from another base.
set -euo pipefail
OUT=${1:?usage: scripts/lab_study.sh OUT [quick|selection|full|reproduce|lora ...]}
shift
PIECES=${*:-quick selection full reproduce lora}
BIN=${BIN:-target/release/oneshot}
MODEL_ARGS=()
[ -n "${MODEL:-}" ] && MODEL_ARGS=(--model "$MODEL")
mkdir -p "$OUT"

step() {
  echo "== $(date +%T) $*" | tee -a "$OUT/log"
  "$@" --no-progress >> "$OUT/log" 2>&1
}

demo_seeds() {
  local name=$1
  shift
  for seed in 0 1 2; do
    local dir="$OUT/$name-s$seed"
    if [ -f "$dir/summary.json" ]; then
      echo "== $name seed $seed: done ($dir/summary.json)" | tee -a "$OUT/log"
      continue
    fi
    rm -rf "$dir"
    step "$BIN" demo --out "$dir" --seed "$seed" "${MODEL_ARGS[@]}" "$@"
  done
}

for piece in $PIECES; do
  case $piece in
    quick) demo_seeds quick ;;
    full) demo_seeds full --budget full ;;
    lora) demo_seeds lora --lora 16 ;;
    selection) step "$BIN" lab selection --seeds 3 --k 4 --out "$OUT/selection" "${MODEL_ARGS[@]}" ;;
    reproduce) step "$BIN" lab reproduce --seeds 3 --out "$OUT/reproduce" "${MODEL_ARGS[@]}" ;;
    *) echo "unknown piece $piece (quick, selection, full, reproduce, lora)" >&2; exit 2 ;;
  esac
done
echo "== $(date +%T) done: $PIECES" | tee -a "$OUT/log"
