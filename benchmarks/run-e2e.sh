#!/usr/bin/env bash
# End-to-end benchmarks (`make bench-e2e`): the real binary against rsyslog
# (Debian package, started and stopped here with its own config) on the same
# corpus; Loki receiver; Kafka (librdkafka mock cluster via
# build/benchmarks/kafka_mock); journald -> Loki; write-to-delivery latency
# at a fixed rate; 1, 100 and 10,000 files; idle CPU with 10,000 quiet
# files. See benchmarks/e2e.py
# for the knobs (SLUICE_E2E_MB, SLUICE_E2E_SKIP, ...). Then the Kafka input
# against file -> Loki and rsyslog imkafka (benchmarks/kafka_input.py;
# SLUICE_E2E_SKIP=kafka_input leaves it out).
# Usage: benchmarks/run-e2e.sh [BUILD_DIR (default build)]
set -eu
BUILD=${1:-build}
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
rc=0
python3 benchmarks/e2e.py "$BUILD" || rc=$?
case ",${SLUICE_E2E_SKIP:-}," in
*,kafka_input,*) ;;
*) python3 benchmarks/kafka_input.py "$BUILD" || rc=$? ;;
esac
exit $rc
