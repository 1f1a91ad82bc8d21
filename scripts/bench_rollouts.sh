#!/usr/bin/env bash
# Side-by-side measurements for rollouts and the training step on one quiet machine: this
# build (target/release) against a build of an earlier commit (BEFORE, a target dir holding
# release/oneshot and release/examples/step_bench) and against PyTorch (PY: a python with
# torch and transformers). Every command runs alone, one after another; outputs go to OUT.
#
#   cargo build --release -p oneshot
#   cargo build --release -p oneshot-train --example step_bench
#   PY=/path/to/python scripts/bench_rollouts.sh OUT [BEFORE]
#
# THREADS (default 2) threads on both sides; SKIP_TORCH=1 leaves PyTorch out.
set -uo pipefail
OUT=${1:?usage: scripts/bench_rollouts.sh OUT [BEFORE]}
BEFORE=${2:-}
PY=${PY:-python3}
T=${THREADS:-2}
CFG=configs/shapes/qwen2.5-0.5b.json
NOW=target/release
mkdir -p "$OUT"
{ lscpu; echo; uptime; } > "$OUT/machine.txt"

run() {
  local name=$1
  shift
  echo "== $(date +%T) $name: $*" | tee -a "$OUT/log"
  if ! /usr/bin/time -f "wall %e s, peak RSS %M KiB" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"; then
    echo "   FAILED (see $OUT/$name.err)" | tee -a "$OUT/log"
  fi
  tail -1 "$OUT/$name.err" | tee -a "$OUT/log"
}

# The engine: forward, decode at several batch sizes, training step; f32 and bf16 products.
for mm in f32 bf16; do
  run "model-$mm" $NOW/oneshot bench model --config $CFG --threads "$T" --matmul $mm \
    --decode-batches 1,8,32,64,128 --decode-tokens 8
  if [ -n "$BEFORE" ]; then
    run "model-$mm-before" "$BEFORE/release/oneshot" bench model --config $CFG --threads "$T" \
      --matmul $mm --decode-batches 1,8,32,64,128 --decode-tokens 8
  fi
done
run model-bf16-weights $NOW/oneshot bench model --config $CFG --threads "$T" --dtype bf16 \
  --no-train --forward-reps 1 --decode-batches 1 --decode-tokens 16

# The 1-shot rollout: 64 samples of one 150-token prompt, up to 512 new tokens.
for mm in bf16 f32; do
  run "rollout-$mm" $NOW/oneshot bench rollout --config $CFG --threads "$T" --samples 64 \
    --max-new 512 --matmul $mm --check-logprobs 2 --json
done

# The trainer's step: Qwen2.5-0.5B shape (1 prompt x 8 responses of 64 tokens, bf16 products,
# KL off) and the lab demo (golden budget: its one-shot stage's per-step times).
for side in now before; do
  dir=$NOW
  [ $side = before ] && { [ -n "$BEFORE" ] || continue; dir="$BEFORE/release"; }
  BENCH_MATMUL=bf16 run "step-05b-$side" "$dir/examples/step_bench" qwen05b 1 8 64 3 nokl
  run "demo-$side" "$dir/oneshot" demo --budget golden --out "$OUT/demo-$side" --threads "$T"
done

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  for ac in "" --autocast; do
    run "torch-model${ac:+-autocast}" "$PY" scripts/bench_model_torch.py --config $CFG \
      --threads "$T" --dtype f32 $ac --no-train --decode-batches 1,8,32,64 --decode-tokens 8
  done
  # PyTorch's best of {f32, bf16 autocast} x {dynamic, static cache}, picked at 64 new tokens,
  # then that configuration at 512.
  run torch-rollout-pick "$PY" scripts/bench_rollout_torch.py --config $CFG --threads "$T" \
    --samples 64 --max-new 64 --json
  best=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["best"])' \
    "$OUT/torch-rollout-pick.txt" 2>/dev/null || echo best)
  run torch-rollout "$PY" scripts/bench_rollout_torch.py --config $CFG --threads "$T" \
    --samples 64 --max-new 512 --variant "$best" --json
fi
{ echo; uptime; } >> "$OUT/machine.txt"
