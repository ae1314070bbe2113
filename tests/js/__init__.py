"""The real sockjs-client against octotrio: node scripts and the Python side that drives them.

``npm ci`` (run by ``make test`` through ``scripts/install-deps.sh``) installs the npm
packages of ``package.json``; the browser tests also need Debian's ``chromium``.
"""
