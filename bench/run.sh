#!/usr/bin/env bash
# Runs the benchmark suite and writes bench/results/latest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./bench/cmd/runbench -runs "${RUNS:-3}" -out bench/results/latest.md "$@"
