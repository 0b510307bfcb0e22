#!/bin/sh
# `make run`: the agent on config/dev.yml, with a writer appending a line to
# a live log every half second so records keep flowing. Ctrl-C stops both.
set -eu
# config/dev.yml (`dev: true`) names paths relative to the repository's top.
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-build/cli/sluice}
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
cd "$top"
dev=${SLUICE_DEV_DIR:-build/dev}
export SLUICE_DEV_DIR="$dev"
# A fresh data_dir each time, so the samples are shown again.
rm -rf "$dev/data"
mkdir -p "$dev/live"
: > "$dev/live/live.log"
(
    i=0
    while :; do
        i=$((i + 1))
        printf '{"ts":"%s","level":"info","msg":"heartbeat","seq":%d}\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$i" >> "$dev/live/live.log"
        sleep 0.5
    done
) &
writer=$!
trap 'kill $writer 2>/dev/null || true' EXIT INT TERM
echo "sluice: running on config/dev.yml (Ctrl-C to stop)" >&2
"$bin" run -c config/dev.yml
