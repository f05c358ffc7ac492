#!/usr/bin/env bash
# Runs weir's whole test suite: the race detector on the packages whose
# concurrency matters, everything else normally. Servers the tests need
# (MinIO for the S3 suites) are installed and started by scripts it calls.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
race_pkgs=()
other_pkgs=()
while read -r pkg; do
  case "$pkg" in
    */engine|*/engine/*|*/state|*/state/*|*/checkpoint|*/checkpoint/*|*/txn|*/txn/*) race_pkgs+=("$pkg") ;;
    *) other_pkgs+=("$pkg") ;;
  esac
done < <($GO list ./...)

if [ -x scripts/minio.sh ]; then
  # shellcheck source=/dev/null
  source scripts/minio.sh
  minio_start
  trap minio_stop EXIT
fi

status=0
if [ ${#race_pkgs[@]} -gt 0 ]; then
  $GO test -race -count=1 -timeout 30m "${race_pkgs[@]}" || status=1
fi
$GO test -count=1 -timeout 30m "${other_pkgs[@]}" || status=1
exit $status
