#!/usr/bin/env bash
# Stage benchmarks (`make bench`): runs every stage benchmark binary present
# in the build with sizes that keep the whole run under 5 minutes on a
# 2-core machine, prints each one's output and then a summary table.
# Exits non-zero when a benchmark fails to run (crash, error, timeout), not
# when one is slow. Usage: benchmarks/run-stage.sh [BUILD_DIR (default build)]
# Sizes can be raised with SLUICE_BENCH_SCALE=N (multiplies the data sizes).
set -u
BUILD=${1:-build}
SCALE=${SLUICE_BENCH_SCALE:-1}
BDIR=$BUILD/benchmarks
PER_BENCH_TIMEOUT=${SLUICE_BENCH_TIMEOUT:-150}
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-stage.XXXXXX")
trap 'rm -rf "$LOGDIR"' EXIT

if [ ! -d "$BDIR" ]; then
    echo "run-stage: $BDIR not found (build first: meson setup $BUILD && ninja -C $BUILD)" >&2
    exit 2
fi

# name | arguments (see each bench_*.c header for its argv)
BENCHES=(
    "bench_lines|$((1024 * SCALE)) 5"
    "bench_json|$((64 * SCALE))"
    "bench_parsers|$((32 * SCALE))"
    "bench_quality|$((100000 * SCALE)) 5"
    "bench_loki|"
    "bench_kafka|$((300000 * SCALE)) 5"
    "bench_spool|$((64 * SCALE)) 3"
    "bench_journald|$((100000 * SCALE)) 3"
)

declare -a ROWS
failed=0
start_all=$(date +%s.%N)
for entry in "${BENCHES[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    exe=$BDIR/$name
    if [ ! -x "$exe" ]; then
        ROWS+=("$name|-|not built|-")
        continue
    fi
    echo "=== $exe $args"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086  # args are word lists on purpose
    timeout "$PER_BENCH_TIMEOUT" "$exe" $args >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    cat "$LOGDIR/$name.out"
    if [ $rc -ne 0 ]; then
        failed=1
        status="FAILED (rc=$rc)"
        [ $rc -eq 124 ] && status="FAILED (timeout ${PER_BENCH_TIMEOUT}s)"
        echo "--- $name stderr (last 20 lines):"
        tail -n 20 "$LOGDIR/$name.err"
    else
        status=ok
    fi
    ROWS+=("$name|$args|$status|$secs")
    echo
done
end_all=$(date +%s.%N)

echo "=== stage benchmarks: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
printf '%-16s %-16s %-26s %8s\n' benchmark arguments status seconds
for row in "${ROWS[@]}"; do
    IFS='|' read -r n a s t <<<"$row"
    printf '%-16s %-16s %-26s %8s\n' "$n" "${a:--}" "$s" "$t"
done
awk -v a="$start_all" -v b="$end_all" 'BEGIN { printf "total: %.0f s\n", b - a }'
exit $failed
