#!/usr/bin/env bash
# Installs what octotrio needs besides its virtualenv.
#
#   scripts/install-deps.sh             the npm packages of package.json into node_modules:
#                                       sockjs-client (the status page's bundle) and
#                                       playwright-core (the browser tests' driver)
#   scripts/install-deps.sh --chromium  also Debian's chromium at /usr/bin/chromium, for the
#                                       browser tests (tests/test_sockjs_clients.py)
#
# `npm ci` runs whenever node_modules is missing or older than package.json/package-lock.json.
# chromium is installed with apt-get when it is missing and we are root (CI is a fresh Debian
# machine, as root); playwright-core drives that browser, since a test tool's own browser
# download cannot work on these machines. Does nothing when everything is in place.
set -euo pipefail
if [[ $# -gt 1 || ( $# -eq 1 && $1 != --chromium ) ]]; then
    echo "usage: $0 [--chromium]" >&2
    exit 2
fi
cd "$(dirname "$0")/.."

# npm ci writes node_modules/.package-lock.json last, so it marks a complete install.
installed=node_modules/.package-lock.json
if [[ ! -f $installed || package-lock.json -nt $installed || package.json -nt $installed ]]; then
    if ! command -v npm >/dev/null; then
        # The server runs without it (the status page then says what is missing); the tests do not.
        echo "install-deps: npm is missing, so the status page's sockjs-client bundle is not installed" >&2
        [[ ${1:-} == --chromium ]] && exit 1
        exit 0
    fi
    npm ci --no-audit --no-fund
fi

if [[ ${1:-} == --chromium && ! -x /usr/bin/chromium ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: /usr/bin/chromium is missing; as root, run: apt-get install chromium" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
