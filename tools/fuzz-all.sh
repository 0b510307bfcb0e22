#!/bin/sh
# Runs every libFuzzer target built in BUILD_DIR/tests (fuzz_<name>, from
# `meson setup -Dfuzz=true` with clang) for SECONDS each, starting from a
# copy of tests/fuzz/corpus/<name>/ so new inputs stay out of the tree.
# Crash, leak, timeout and out-of-memory inputs are kept in
# BUILD_DIR/fuzz-artifacts/<name>/; the exit status is non-zero when any
# target failed (or when no target was found).
#
# usage: tools/fuzz-all.sh BUILD_DIR SECONDS
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
secs=$2
case $secs in
'' | *[!0-9]*)
    echo "fuzz-all: SECONDS must be a whole number, got '$secs'" >&2
    exit 2
    ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

ran=0
failed=""
for bin in "$build"/tests/fuzz_*; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
    name=${bin##*/fuzz_}
    case $name in
    replay_* | *.p) continue ;; # corpus replayers and meson object dirs
    esac
    corpus=$tmp/corpus-$name
    mkdir -p "$corpus"
    if [ -d "$root/tests/fuzz/corpus/$name" ]; then
        cp -R "$root/tests/fuzz/corpus/$name/." "$corpus/"
    else
        echo "fuzz-all: $name has no seed corpus (tests/fuzz/corpus/$name)" >&2
    fi
    artifacts=$build/fuzz-artifacts/$name
    mkdir -p "$artifacts"
    log=$tmp/$name.log
    printf 'fuzz-all: %-12s %ss ... ' "$name" "$secs"
    # -timeout: one input taking longer is a hang, reported like a crash.
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "ok (${execs:-?} runs)"
    else
        echo "FAILED"
        tail -n 40 "$log" >&2
        echo "fuzz-all: $name: inputs kept in $artifacts" >&2
        failed="$failed $name"
    fi
    ran=$((ran + 1))
done

if [ "$ran" -eq 0 ]; then
    echo "fuzz-all: no libFuzzer targets in $build/tests (configure with CC=clang -Dfuzz=true)" >&2
    exit 1
fi
if [ -n "$failed" ]; then
    echo "fuzz-all: failed:$failed" >&2
    exit 1
fi
echo "fuzz-all: $ran targets, no failures"
