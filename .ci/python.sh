#!/usr/bin/env bash
# Builds the Python package oneshot_verify (bindings/python, PyO3 + maturin) into a fresh
# virtual environment and runs its tests. Needs only Rust and Python >= 3.9 on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="$(mktemp -d)/venv"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "maturin>=1.5,<2" pytest
"$VENV/bin/pip" install --quiet ./bindings/python
"$VENV/bin/python" -m pytest -q bindings/python/tests
