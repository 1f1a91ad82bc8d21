#!/usr/bin/env bash
# Re-records crates/cli/tests/golden/demo_summary.json: the golden demo (portable kernels,
# `--budget golden`) run by its own test in recording mode. Run it only when a change to
# sampling, the checker, the lab or the training step alters the demo on purpose, and say why
# in the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
ONESHOT_RECORD_GOLDEN=1 cargo test --release -p oneshot --test golden_demo -- --nocapture
git diff --stat -- crates/cli/tests/golden/demo_summary.json
