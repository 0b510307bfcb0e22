#!/bin/sh
# Runs a command with TMPDIR set to a fresh folder and removes the folder
# afterwards, whatever the command's status. A test killed at its timeout
# never runs its own cleanup (tests/helpers.c removes a failed test's
# folders at exit, which a kill skips): what it left goes with the run.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-run.XXXXXX") || exit 1
# Tests that run the agent unprivileged (setpriv, uid 65534) must reach
# their folders through this one: others may pass, not list.
chmod 0711 "$dir"
TMPDIR=$dir "$@"
rc=$?
rm -rf "$dir"
exit $rc
