#!/usr/bin/env bash
# A real S3 server (MinIO) for weir's S3 test suites, on a loopback port, with
# a temporary data dir and generated credentials.
#
# Source it, then call:
#   minio_start  installs MinIO if needed (go install, into
#                $WEIR_CACHE_DIR, default ~/.cache/weir; about three minutes
#                the first time, then reused), starts it in the background,
#                waits until it is live and exports:
#                  WEIR_S3_ENDPOINT    127.0.0.1:PORT (plain http)
#                  WEIR_S3_ACCESS_KEY  WEIR_S3_SECRET_KEY  (random)
#                  WEIR_S3_BUCKET      weir-test (not created: tests call
#                                      EnsureBucket)
#                  WEIR_S3_REGION      us-east-1
#                  MINIO_PID           the server's pid
#                  MINIO_DATA          its data dir
#                  WEIR_MINIO_BIN      the minio binary
#                  WEIR_MINIO_CMD_ARGS the arguments it runs with (its
#                                      credentials are the WEIR_S3_* keys,
#                                      given as MINIO_ROOT_USER/PASSWORD)
#   minio_stop   stops it and removes its data (safe to call twice).
#
# Outage tests do not stop this shared server (tests of other packages use it
# at the same time): storagetest.StartMinIO runs a private server from
# WEIR_MINIO_BIN that a test may stop and restart.
#
# By hand:  bash -c 'source scripts/minio.sh; minio_start; env | grep WEIR_S3; minio_stop'
# or run a command with MinIO up:  scripts/minio.sh go test ./checkpoint/storage/...
#
# MinIO is AGPL: it runs as a separate process and is never imported.

WEIR_MINIO_VERSION=${WEIR_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}

# _minio_install prints the path of a working minio binary, building it when
# there is none.
_minio_install() {
  local go=${GO:-go} cache dir bin
  if [ -n "${WEIR_MINIO_BIN:-}" ] && "$WEIR_MINIO_BIN" --version >/dev/null 2>&1; then
    echo "$WEIR_MINIO_BIN"
    return 0
  fi
  cache=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
  dir="$cache/minio-$WEIR_MINIO_VERSION"
  bin="$dir/minio"
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "$bin"
    return 0
  fi
  echo "minio.sh: building MinIO $WEIR_MINIO_VERSION into $dir (a few minutes the first time)" >&2
  mkdir -p "$dir" || return 1
  if ! GOFLAGS='' GOBIN="$dir" "$go" install "github.com/minio/minio@$WEIR_MINIO_VERSION" >&2; then
    # The module proxy can refuse "go install pkg@version" for some modules;
    # installing from a small module that pins the version works.
    echo "minio.sh: go install refused; installing through a pinned module" >&2
    local mod
    mod=$(mktemp -d) || return 1
    if ! (cd "$mod" && "$go" mod init weir-minio-install >/dev/null 2>&1 &&
      GOFLAGS='' "$go" get "github.com/minio/minio@$WEIR_MINIO_VERSION" &&
      GOFLAGS='' GOBIN="$dir" "$go" install github.com/minio/minio) >&2; then
      rm -rf "$mod"
      echo "minio.sh: cannot install MinIO $WEIR_MINIO_VERSION" >&2
      return 1
    fi
    rm -rf "$mod"
  fi
  if ! "$bin" --version >/dev/null 2>&1; then
    echo "minio.sh: $bin was built but does not run" >&2
    return 1
  fi
  echo "$bin"
}

# _minio_rand prints 2*N random hex digits.
_minio_rand() {
  head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# _minio_free_port prints a loopback TCP port nothing listens on (by trying
# to connect: refused means free).
_minio_free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "minio.sh: no free loopback port found" >&2
  return 1
}

# _minio_live succeeds when the server on port $1 answers its liveness probe.
_minio_live() {
  local url="http://127.0.0.1:$1/minio/health/live"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
    return
  fi
  local status
  status=$(
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /minio/health/live HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$1" >&3
    timeout 2 head -n 1 <&3
  ) 2>/dev/null || return 1
  [[ "$status" == *" 200"* ]]
}

# _minio_kill PID stops a server: SIGTERM, then SIGKILL after 10 seconds.
_minio_kill() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true # reaps it when it is this shell's child
}

minio_start() {
  if [ -n "${MINIO_PID:-}" ] && kill -0 "$MINIO_PID" 2>/dev/null; then
    echo "minio.sh: MinIO already running at ${WEIR_S3_ENDPOINT:-?} (pid $MINIO_PID)" >&2
    return 0
  fi
  local bin dir port user pass pid attempt started=""
  bin=$(_minio_install) || return 1
  user=$(_minio_rand 10) || return 1
  pass=$(_minio_rand 20) || return 1
  for attempt in 1 2 3; do
    port=$(_minio_free_port) || return 1
    dir=$(mktemp -d "${TMPDIR:-/tmp}/weir-minio.XXXXXX") || return 1
    mkdir -p "$dir/data" "$dir/certs"
    local -a args=(server "$dir/data" --address "127.0.0.1:$port" --certs-dir "$dir/certs")
    MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$pass" MINIO_BROWSER=off MINIO_UPDATE=off \
      "$bin" "${args[@]}" </dev/null >>"$dir/minio.log" 2>&1 &
    pid=$!
    # Wait (bounded) until it is live, or until it exits.
    for _ in $(seq 1 600); do
      if _minio_live "$port"; then
        started=yes
        break
      fi
      kill -0 "$pid" 2>/dev/null || break # exited: maybe the port was taken meanwhile
      sleep 0.1
    done
    if [ -n "$started" ]; then break; fi
    echo "minio.sh: MinIO did not start on 127.0.0.1:$port (attempt $attempt); its log:" >&2
    sed 's/^/    /' "$dir/minio.log" >&2 || true
    _minio_kill "$pid"
    rm -rf "$dir"
  done
  if [ -z "$started" ]; then
    echo "minio.sh: giving up on MinIO" >&2
    return 1
  fi
  export WEIR_S3_ENDPOINT="127.0.0.1:$port"
  export WEIR_S3_ACCESS_KEY="$user"
  export WEIR_S3_SECRET_KEY="$pass"
  export WEIR_S3_BUCKET=weir-test
  export WEIR_S3_REGION=us-east-1
  export WEIR_MINIO_BIN="$bin"
  export WEIR_MINIO_CMD_ARGS="${args[*]}"
  export MINIO_PID="$pid"
  export MINIO_DATA="$dir/data"
  _WEIR_MINIO_DIR=$dir
  echo "minio.sh: MinIO live at http://$WEIR_S3_ENDPOINT (pid $MINIO_PID, data $MINIO_DATA)" >&2
}

minio_stop() {
  if [ -z "${MINIO_PID:-}" ]; then return 0; fi
  _minio_kill "$MINIO_PID"
  if [ -n "${_WEIR_MINIO_DIR:-}" ]; then rm -rf "$_WEIR_MINIO_DIR"; fi
  unset WEIR_S3_ENDPOINT WEIR_S3_ACCESS_KEY WEIR_S3_SECRET_KEY WEIR_S3_BUCKET WEIR_S3_REGION \
    WEIR_MINIO_CMD_ARGS MINIO_PID MINIO_DATA _WEIR_MINIO_DIR
  echo "minio.sh: MinIO stopped" >&2
  return 0
}

# Executed rather than sourced: run the arguments as a command with MinIO up.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if [ $# -eq 0 ]; then
    echo "usage: source $0 (then minio_start / minio_stop), or: $0 COMMAND [ARGS...]" >&2
    exit 2
  fi
  minio_start
  trap minio_stop EXIT
  status=0
  "$@" || status=$?
  exit "$status"
fi
