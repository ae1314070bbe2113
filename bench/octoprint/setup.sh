#!/bin/sh
# Install a real OctoPrint 1.11.8 from PyPI into its own virtualenv (never octotrio's), for
# `python -m bench ... --with-octoprint`. Idempotent: does nothing when it is already installed.
# Usage: bench/octoprint/setup.sh [VENV_DIR]   (default bench/octoprint/.venv)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-$here/.venv}
if [ -x "$venv/bin/octoprint" ] && "$venv/bin/python" -c 'import octoprint, sys; sys.exit(octoprint.__version__ != "1.11.8")' 2>/dev/null; then
    exit 0
fi
# OctoPrint 1.11 supports Python 3.8-3.13.
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "octoprint==1.11.8"
"$venv/bin/octoprint" --version
