#!/usr/bin/env bash
# Set up prunebench in ./.venv from a clean clone: Python deps, PyTorch, and the data it can install.
#   bash scripts/setup.sh          # library + CLI
#   bash scripts/setup.sh --test   # plus the test tools (pytest, ruff, mypy, headless Chromium, Ray)
# PyTorch: an already-installed torch in .venv is kept (GPU users: install yours first, or set
# PRUNEBENCH_TORCH="torch==X.Y.Z" ). Otherwise torch==2.13.0 is installed: on the project's CPU
# machines that is the CPU wheel on disk; a bare `torch` would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1
PY=${PYTHON:-python3}

if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip -q --disable-pip-version-check "$@"; }

if [[ -n "${PRUNEBENCH_TORCH:-}" ]]; then
  pip install "$PRUNEBENCH_TORCH"
elif ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install "torch==2.13.0"
fi

# Debian packages: Fashion-MNIST (and Chromium for the report test). Skipped without root/apt.
apt_pkgs=()
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || apt_pkgs+=(dataset-fashion-mnist)
if (( want_test )); then
  dpkg -s chromium >/dev/null 2>&1 || apt_pkgs+=(chromium)
  dpkg -s chromium-driver >/dev/null 2>&1 || apt_pkgs+=(chromium-driver)
fi
if (( ${#apt_pkgs[@]} )) && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  echo "setup: apt-get install ${apt_pkgs[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null) \
    || echo "setup: apt-get failed; Fashion-MNIST will be downloaded on first use instead" >&2
fi

if (( want_test )); then
  pip install -e ".[test,ray,export]"
else
  pip install -e .
fi
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
