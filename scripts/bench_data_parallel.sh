#!/usr/bin/env bash
# Data-parallel scaling on one machine: one process with 2 threads against 2 MPI ranks with 1
# thread each, the same global batch and seeds, on a random model of the Qwen2.5-0.5B shape
# (written by step_bench), KL off. Prints the mean rollout / log-prob / update / step seconds
# over the steps after the first (rank 0's for the two ranks) and each layout's peak RSS.
#
#   cargo build --release -p oneshot --features mpi
#   cargo build --release -p oneshot-train --example step_bench
#   scripts/bench_data_parallel.sh OUT [rows n max_response steps]
#
# BENCH_MATMUL=f32|bf16 (default bf16) picks the products; BENCH_SETS adds config overrides
# (space-separated, e.g. "lora.enabled=true lora.r=16" when two full fine-tuning ranks do not
# fit in memory).
set -euo pipefail
OUT=${1:?usage: scripts/bench_data_parallel.sh OUT [rows n max_response steps]}
ROWS=${2:-2}
N=${3:-4}
RESP=${4:-32}
STEPS=${5:-3}
mkdir -p "$OUT"
export BENCH_MATMUL=${BENCH_MATMUL:-bf16}
BENCH_KEEP="$OUT/setup" target/release/examples/step_bench qwen05b "$ROWS" "$N" "$RESP" 1 nokl \
  > "$OUT/setup.txt" 2>&1
args=()
while IFS= read -r s; do
  case $s in trainer.output_dir=* | trainer.total_steps=*) ;; *) args+=(--set "$s") ;; esac
done < "$OUT/setup/sets.txt"
args+=(--set "trainer.total_steps=$STEPS")
for s in ${BENCH_SETS:-}; do
  args+=(--set "$s")
done

/usr/bin/time -f "peak RSS %M KiB" -o "$OUT/one-process.rss" \
  target/release/oneshot train "${args[@]}" --threads 2 --output-dir "$OUT/one-process" \
  > "$OUT/one-process.log" 2>&1
/usr/bin/time -f "peak RSS %M KiB (largest rank)" -o "$OUT/two-ranks.rss" \
  mpirun --allow-run-as-root --oversubscribe -np 2 --bind-to none \
  --mca btl_vader_single_copy_mechanism none -x RAYON_NUM_THREADS=1 \
  target/release/oneshot train "${args[@]}" --threads 1 --output-dir "$OUT/two-ranks" \
  > "$OUT/two-ranks.log" 2>&1

python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
keys = ["time/rollout", "time/logprob", "time/update", "time/step"]
print("| layout | " + " | ".join(k.split("/")[1] for k in keys) + " | peak RSS |")
print("|---|" + "---:|" * (len(keys) + 1))
for name in ["one-process", "two-ranks"]:
    rows = [json.loads(l) for l in (out / name / "metrics.jsonl").read_text().splitlines() if l.strip()]
    rows = [r for r in rows if "time/step" in r]
    tail = rows[1:] or rows
    means = [sum(r[k] for r in tail) / len(tail) for k in keys]
    rss = (out / f"{name}.rss").read_text().strip().splitlines()[-1]
    print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in means) + f" | {rss} |")
PY
