#!/usr/bin/env bash
# Command two: run the tests in the project's virtual environment (the one
# scripts/quickstart.sh makes), installing the test extras into it first when needed.
#   bash scripts/test.sh [PYTEST ARGS...]
# CI (.ci/run) runs exactly this after installing what CI needs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
venv_make
venv_torch
venv_install test,multimodal,ray
export VIRTUAL_ENV="$PWD/$VENV" PATH="$PWD/$VENV/bin:$PATH"
exec "$VENV/bin/python" -m pytest -q "$@"
