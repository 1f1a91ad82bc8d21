#!/usr/bin/env bash
# Fetches the paper's data (training files, selection history, the six benchmarks) into a
# shared directory laid out as the tests and configs expect, or checks an existing copy.
#
#   scripts/fetch_data.sh [DIR]            download the missing files into DIR/data/...
#   scripts/fetch_data.sh --verify [DIR]   check the sha256 of every file the tests read
#
# DIR defaults to $ONESHOT_SHARED, else `shared` beside the repository (../shared).
# Sources and licences: docs/DATA.md.
set -euo pipefail

# Every file comes from the paper's repository at one pinned commit, so the bytes cannot move
# under the checksums. Four of the six benchmark files there are byte-identical copies of the
# Qwen2.5-Math evaluation harness (QwenLM/Qwen2.5-Math, evaluation/data); math500 and aime25
# exist only in the paper's copy of the harness. ONESHOT_FETCH_UPSTREAM points the download
# at a mirror of that tree instead (any URL curl reads, file:// included).
readonly PINNED="https://raw.githubusercontent.com/ypwang61/One-Shot-RLVR/21ed529ec90002597c92aee957af1dd8166bb66c"
readonly UPSTREAM="${ONESHOT_FETCH_UPSTREAM:-$PINNED}"

# path under DIR | sha256 | upstream path ("-": made by this project, not downloadable)
readonly MANIFEST="
data/train/dsr_sub.parquet|bce5945e5666d5b82f1554b0a18203a88a0209f82fa724e5bfdfc17cc9a1aea6|data/train/one_shot_rlvr/dsr_sub.parquet
data/train/pi1_r128.parquet|75a7a6eec9da7ce6951b8e7ad039d70cd76f17511fe33deff3baacdc0f1cceea|data/train/one_shot_rlvr/pi1_r128.parquet
data/train/pi2_r128.parquet|3e29a9aac32c9a667f056a9630378a08dfab170bd4aa468b6d6a7366fc0220ce|data/train/one_shot_rlvr/pi2_r128.parquet
data/train/pi13_r128.parquet|34477e27e811ff9df032044d5701e722477124faf4c5b4d9db57d290fc435750|data/train/one_shot_rlvr/pi13_r128.parquet
data/train/pi1209_r128.parquet|e4f8c4a529bdf8d12d205bc89e3b62211b880bfe95f729173c737b62d482eb07|data/train/one_shot_rlvr/pi1209_r128.parquet
data/train/merge_pi1_pi13_r128.parquet|1956a023d60980c8680fb3858cac60cf1a66dffd95aca83210c0fd4f6cb8f1e2|data/train/one_shot_rlvr/merge_pi1_pi13_r128.parquet
data/train/math500_verl.parquet|a26d23cbad6a4462a1622aff80f4d8bc517d1a0ca4f2ea88ec2436118a956eea|data/test/math500.parquet
data/train/acc_step_500.json|c34cd885edc77dc9494b0ababa239483799be5978e288e0181047f139f2efd34|data/acc_step_500.json
data/train/LICENSE-One-Shot-RLVR|cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30|LICENSE
data/benchmarks/math500/test.jsonl|35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132|Qwen2.5-Eval/evaluation/data/math500/test.jsonl
data/benchmarks/aime24/test.jsonl|af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac|Qwen2.5-Eval/evaluation/data/aime24/test.jsonl
data/benchmarks/amc23/test.jsonl|43707e1ca784602d8479de24ee8ce36609dbebc46dd152b0b12a46611aa898a4|Qwen2.5-Eval/evaluation/data/amc23/test.jsonl
data/benchmarks/minerva_math/test.jsonl|0e656b430d3a0a1dab6aa853f453ba3805e28e2cabe4fc72486a897cc09d8ba2|Qwen2.5-Eval/evaluation/data/minerva_math/test.jsonl
data/benchmarks/olympiadbench/test.jsonl|bb8c1e38a16ea9eacb77530315a674d883f267fbff79183effc53681b4fcc416|Qwen2.5-Eval/evaluation/data/olympiadbench/test.jsonl
data/benchmarks/aime25/test.jsonl|4613b7d3b5346f007625969f4380d932d6a2618fdcc9b89e5d39c7fbddc074b8|Qwen2.5-Eval/evaluation/data/aime25/test.jsonl
data/benchmarks/LICENSE-Qwen2.5-Math-eval|fad7c7435d19a4c635225d0d64915c12175608f44c68eedc62eaa5253bf43b79|Qwen2.5-Eval/evaluation/LICENSE
data/verifier/dev_cases.jsonl|5766472004ffc59d7a42035f2facd60842011f2b74739101bf90c9b28db11c86|-
"

usage() {
  cat <<'EOF'
usage: scripts/fetch_data.sh [DIR]
       scripts/fetch_data.sh --verify [DIR]

Downloads the paper's data into DIR/data (DIR: $ONESHOT_SHARED, else ../shared beside the
repository), or with --verify checks the sha256 of every file the tests read and names each
missing or mismatched file. See docs/DATA.md.
EOF
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    echo "error: neither sha256sum nor shasum is installed" >&2
    exit 2
  fi
}

default_dir() {
  if [[ -n "${ONESHOT_SHARED:-}" ]]; then
    printf '%s\n' "$ONESHOT_SHARED"
  else
    local repo
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    printf '%s\n' "$(dirname "$repo")/shared"
  fi
}

# Prints one line per file; returns 1 when any file is missing or differs.
verify() {
  local dir="$1" bad=0 ok=0 path sum _src actual
  while IFS='|' read -r path sum _src; do
    [[ -z "$path" ]] && continue
    if [[ ! -f "$dir/$path" ]]; then
      echo "MISSING  $path" >&2
      bad=$((bad + 1))
      continue
    fi
    actual="$(sha256_of "$dir/$path")"
    if [[ "$actual" != "$sum" ]]; then
      echo "MISMATCH $path (sha256 $actual, expected $sum)" >&2
      bad=$((bad + 1))
    else
      echo "ok       $path"
      ok=$((ok + 1))
    fi
  done <<<"$MANIFEST"
  if ((bad > 0)); then
    echo "$bad of $((ok + bad)) files missing or mismatched under $dir" >&2
    return 1
  fi
  echo "all $ok files match under $dir"
}

fetch() {
  local dir="$1" failed=0 path sum src tmp
  if ! command -v curl >/dev/null 2>&1; then
    echo "error: curl is required to download" >&2
    exit 2
  fi
  while IFS='|' read -r path sum src; do
    [[ -z "$path" ]] && continue
    if [[ -f "$dir/$path" && "$(sha256_of "$dir/$path")" == "$sum" ]]; then
      echo "present  $path"
      continue
    fi
    if [[ "$src" == "-" ]]; then
      echo "skipped  $path: made by this project, not published upstream (docs/DATA.md)" >&2
      continue
    fi
    mkdir -p "$(dirname "$dir/$path")"
    tmp="$dir/$path.part"
    if ! curl -fsSL --retry 3 -o "$tmp" "$UPSTREAM/$src"; then
      echo "FAILED   $path: could not download $UPSTREAM/$src" >&2
      rm -f "$tmp"
      failed=$((failed + 1))
      continue
    fi
    if [[ "$(sha256_of "$tmp")" != "$sum" ]]; then
      echo "FAILED   $path: downloaded bytes do not match the committed sha256" >&2
      rm -f "$tmp"
      failed=$((failed + 1))
      continue
    fi
    mv -f "$tmp" "$dir/$path"
    echo "fetched  $path"
  done <<<"$MANIFEST"
  if ((failed > 0)); then
    echo "$failed file(s) could not be fetched into $dir" >&2
    return 1
  fi
  echo "done: $dir/data (check with scripts/fetch_data.sh --verify $dir)"
}

mode=fetch
dir=""
for arg in "$@"; do
  case "$arg" in
    --verify) mode=verify ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "error: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -n "$dir" ]]; then
        echo "error: more than one directory given ($dir, $arg)" >&2
        exit 2
      fi
      dir="$arg"
      ;;
  esac
done
[[ -z "$dir" ]] && dir="$(default_dir)"

if [[ "$mode" == verify ]]; then
  verify "$dir"
else
  mkdir -p "$dir"
  fetch "$dir"
fi
