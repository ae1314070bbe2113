#!/bin/sh
# Install a real OctoPrint 1.11.8 from PyPI into its own virtualenv (never octotrio's), for the
# conformance test against OctoPrint (tests/test_conformance_octoprint.py) and the benchmarks
# (`python -m bench ... --with-octoprint`). Idempotent: does nothing when it is already installed, so
# a machine installs it once. Usage: scripts/install-octoprint.sh [VENV_DIR]
# (default $OCTOPRINT_VENV, else .octoprint-venv at the top of the repository; gitignored).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${OCTOPRINT_VENV:-$top/.octoprint-venv}}
if [ -x "$venv/bin/octoprint" ] && "$venv/bin/python" -c 'import octoprint, sys; sys.exit(octoprint.__version__ != "1.11.8")' 2>/dev/null; then
    exit 0
fi
# OctoPrint 1.11 supports Python 3.8-3.13.
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "octoprint==1.11.8"
"$venv/bin/octoprint" --version
