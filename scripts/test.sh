#!/usr/bin/env bash
# Set everything up, run the static checks, then the whole test suite (what CI runs). Any failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "test: ruff check src"
.venv/bin/ruff check src
echo "test: mypy (src/prunebench)"
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
