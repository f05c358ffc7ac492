#!/usr/bin/env bash
# Runs the benchmark suite and writes bench/results/latest.md (see
# bench/README.md). Arguments go to runbench (e.g. -big, -runs 5, -only
# wordcount).
#
# The checkpoint benchmarks restore from S3 too when an S3 server is
# configured: if WEIR_S3_ENDPOINT is not set already, this script starts
# MinIO through scripts/minio.sh (built once into ~/.cache/weir, a few
# minutes the first time) and stops it at the end. BENCH_S3=0 skips S3; if
# MinIO cannot be started the S3 figures are skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."
export WEIR_BENCH_START=${WEIR_BENCH_START:-$(date +%s)}

if [ -z "${WEIR_S3_ENDPOINT:-}" ]; then
  if [ "${BENCH_S3:-1}" = 0 ]; then
    export WEIR_BENCH_S3_NOTE="BENCH_S3=0"
  else
    # shellcheck source=../scripts/minio.sh
    source scripts/minio.sh
    if minio_start; then
      trap minio_stop EXIT
    else
      export WEIR_BENCH_S3_NOTE="MinIO could not be started by scripts/minio.sh (see its messages in the bench output)"
    fi
  fi
fi

go run ./bench/cmd/runbench -runs "${RUNS:-3}" -out bench/results/latest.md "$@"
