#!/usr/bin/env bash
# Runs the GPU checks on a machine with an NVIDIA GPU and builds nothing: the device-
# parameterised tests on cuda:0, then `oneshot bench model --device cuda` beside PyTorch on the
# Qwen2.5-0.5B and 1.5B shapes, and writes a markdown report.
#
#   scripts/gpu_check.sh BUNDLE [REPORT]
#
# BUNDLE is a folder made on the build machine (docs/GPU.md, "Preparing a bundle"):
#   BUNDLE/oneshot              the release binary, built with --features cuda
#   BUNDLE/tests/<crate>/<name> test binaries built with --features cuda, one folder per crate
#                               (kernels, optim, model, train), named by test target
#                               and dist/nccl_smoke, the NCCL world-of-one test (cargo test
#                               --release -p oneshot-dist --features cuda --test nccl_smoke
#                               --no-run); a bundle without it fails the check
#   BUNDLE/lib/libnccl.so.2     optional: the libnccl the NCCL test opens (ONESHOT_NCCL_LIB);
#                               without it the machine's own libnccl.so.2 must be on the
#                               loader's path
# REPORT defaults to gpu-check.md. Run from the repository root (the tests read their fixtures
# from crates/<crate>/, the benches read configs/shapes/). Each part's exit status and time go
# in the report; the script exits non-zero if any test failed.
# Environment: PYTHON (default python3) for the PyTorch bench; GPU_CHECK_BENCH=0 skips the
# benches; GPU_CHECK_SHAPES (default "qwen2.5-0.5b qwen2.5-1.5b").
set -uo pipefail
cd "$(dirname "$0")/.."

bundle="${1:?usage: scripts/gpu_check.sh BUNDLE [REPORT]}"
report="${2:-gpu-check.md}"
python="${PYTHON:-python3}"
shapes="${GPU_CHECK_SHAPES:-qwen2.5-0.5b qwen2.5-1.5b}"
logs="$(mktemp -d)"
failed=0

{
  echo "# GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
  echo "- binary: $("$bundle/oneshot" --version 2>/dev/null || echo "$bundle/oneshot")"
  echo
  echo "## Tests on cuda:0 (ONESHOT_TEST_DEVICE=cuda:0)"
  echo
  echo "| crate | test | result | time |"
  echo "|---|---|---|---|"
} >"$report"

# libnccl is opened at run time by the NCCL backend: the bundle's copy if it has one.
if [ -z "${ONESHOT_NCCL_LIB:-}" ] && [ -e "$bundle/lib/libnccl.so.2" ]; then
  ONESHOT_NCCL_LIB="$(cd "$bundle/lib" && pwd)/libnccl.so.2"
  export ONESHOT_NCCL_LIB
fi
if [ ! -x "$bundle/tests/dist/nccl_smoke" ]; then
  failed=1
  echo "| dist | nccl_smoke | MISSING from the bundle (build it with --features cuda) | 0 s |" >>"$report"
fi

for dir in "$bundle"/tests/*/; do
  crate="$(basename "$dir")"
  for bin in "$dir"*; do
    [ -x "$bin" ] || continue
    name="$(basename "$bin")"
    start=$SECONDS
    ONESHOT_TEST_DEVICE=cuda:0 CARGO_MANIFEST_DIR="$PWD/crates/$crate" \
      "$bin" --test-threads=1 >"$logs/$crate-$name.log" 2>&1
    status=$?
    summary="$(grep -E '^test result:' "$logs/$crate-$name.log" | tail -1)"
    if [ "$status" -ne 0 ]; then
      failed=1
      summary="FAILED (exit $status) ${summary}"
    fi
    echo "| $crate | $name | ${summary:-no result line} | $((SECONDS - start)) s |" >>"$report"
  done
done

for crate_log in "$logs"/*.log; do
  if grep -q -E 'FAILED|panicked' "$crate_log"; then
    {
      echo
      echo "### $(basename "$crate_log" .log): failures"
      echo
      echo '```text'
      grep -E -A12 'panicked|^failures:' "$crate_log" | head -80
      echo '```'
    } >>"$report"
  fi
done

bench() {
  local title="$1"
  shift
  local start=$SECONDS
  {
    echo
    echo "### $title"
    echo
    echo '```text'
    echo "\$ $*"
  } >>"$report"
  "$@" >"$logs/bench.log" 2>&1
  local status=$?
  cat "$logs/bench.log" >>"$report"
  {
    echo "(exit $status, $((SECONDS - start)) s)"
    echo '```'
  } >>"$report"
}

if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  echo -e "\n## Model bench: oneshot vs PyTorch (random weights, bf16)" >>"$report"
  for shape in $shapes; do
    config="configs/shapes/$shape.json"
    common=(--config "$config" --dtype bf16 --rows 8 --seq 512 --prompt 128
      --decode-batches 1,32,128 --decode-tokens 32)
    bench "$shape: oneshot" "$bundle/oneshot" bench model --device cuda "${common[@]}"
    bench "$shape: PyTorch" "$python" scripts/bench_model_torch.py --device cuda "${common[@]}"
  done
fi

rm -rf "$logs"
echo "wrote $report"
exit "$failed"
