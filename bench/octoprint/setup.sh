#!/bin/sh
# Kept for the bench's docs: the one OctoPrint installer is scripts/install-octoprint.sh.
exec "$(dirname "$0")/../../scripts/install-octoprint.sh" "$@"
