#!/usr/bin/env bash
# Run Autobahn|Testsuite against wskit: the echo server (`wskit echo`) and the
# echo client (compliance/client.py), on asyncio and on Trio.
#
#   bash compliance/run.sh [--full] [--backend asyncio|trio|both] [--side server|client|both]
#                          [--strict-close]
#
#   (default)       sections 1-7, 9 and 10 (301 cases per run, seconds each)
#   --full          every case, permessage-deflate sections 12 and 13 included
#                   (about 10 minutes per side and backend)
#   --strict-close  also fail on a passing case whose close behaviour is graded FAILED
#
# The harness (wstest ported to Python 3, and its scripts) is looked for at
# $AUTOBAHN_TOOLS, else at ../shared/tools/autobahn beside the project root;
# without it this script says so and exits 0. It is used as it is: setup.sh,
# test_server.sh, test_client.sh and summarize.py are called, never copied.
#
# Environment:
#   AUTOBAHN_TOOLS  the harness folder
#   REPORTS         report folder (default compliance/reports, gitignored); one
#                   subfolder per run: server-asyncio, client-trio, ...
#   PYTHON          the interpreter with wskit installed (default .venv/bin/python)
#   TIMEOUT         seconds allowed per run (default 300, or 1800 with --full)
#
# Exit status: 0 when no case FAILED and none is missing in any run, 1 otherwise
# (2 on a usage error).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
full=0
backends="both"
sides="both"
strict_close=0
usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1 ;;
    --strict-close) strict_close=1 ;;
    --backend) backends="${2:?--backend needs a value}"; shift ;;
    --backend=*) backends="${1#*=}" ;;
    --side) sides="${2:?--side needs a value}"; shift ;;
    --side=*) sides="${1#*=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$backends" in both) backends="asyncio trio" ;; asyncio|trio) ;; *) echo "run.sh: --backend asyncio|trio|both" >&2; exit 2 ;; esac
case "$sides" in both) sides="server client" ;; server|client) ;; *) echo "run.sh: --side server|client|both" >&2; exit 2 ;; esac

TOOLS="${AUTOBAHN_TOOLS:-$ROOT/../shared/tools/autobahn}"
if [ ! -f "$TOOLS/test_server.sh" ] || [ ! -f "$TOOLS/test_client.sh" ]; then
  echo "compliance: SKIPPED: no Autobahn harness at $TOOLS (set AUTOBAHN_TOOLS to its folder)"
  exit 0
fi
TOOLS="$(cd "$TOOLS" && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
REPORTS="${REPORTS:-$ROOT/compliance/reports}"
mkdir -p "$REPORTS"
REPORTS="$(cd "$REPORTS" && pwd)"
if [ "$full" = 1 ]; then
  exclude=""
  TIMEOUT="${TIMEOUT:-1800}"
else
  exclude="12.*,13.*"  # the deflate sections take ~95 % of a full run
  TIMEOUT="${TIMEOUT:-300}"
fi
summarize_args=()
[ "$strict_close" = 1 ] && summarize_args+=(--strict-close)

log() { echo "[compliance] $*" >&2; }

# Set up (or check) wstest once; the test scripts then use it as it is.
if ! WSTEST="$(bash "$TOOLS/setup.sh" | tail -n 1)" || [ ! -x "$WSTEST" ]; then
  log "the harness's setup.sh failed: no wstest to run"
  exit 1
fi
export WSTEST

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    # wskit echo closes its connections (close_timeout) and exits; bounded.
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      log "the echo server did not exit on SIGTERM: killing it"
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

run_server() {
  local backend="$1" out="$REPORTS/server-$backend" port status
  mkdir -p "$out"
  # Port 0: the server picks a free port and prints it ("listening on ws://...").
  "$PY" -m wskit echo --host 127.0.0.1 --port 0 --backend "$backend" \
    --max-message 67108864 --max-fragments 1048576 --quiet \
    > "$out/testee.out" 2> "$out/testee.log" &
  server_pid=$!
  port=""
  for _ in $(seq 1 200); do
    port="$(sed -n 's|^listening on ws://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$out/testee.out")"
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    log "the echo server ($backend) did not start:"; cat "$out/testee.log" >&2
    stop_server
    return 2
  fi
  log "server testee: wskit echo on 127.0.0.1:$port ($backend)"
  set +e
  AGENT="wskit-$backend" OUTDIR="$out" EXCLUDE="$exclude" TIMEOUT="$TIMEOUT" \
    SUMMARIZE_ARGS="${summarize_args[*]:-}" bash "$TOOLS/test_server.sh" "127.0.0.1:$port"
  status=$?
  set -e
  if ! kill -0 "$server_pid" 2>/dev/null; then
    log "the echo server ($backend) died during the run:"; tail -n 30 "$out/testee.log" >&2
    status=1
  fi
  stop_server
  if grep -q Traceback "$out/testee.log"; then
    log "the echo server ($backend) logged a traceback: see $out/testee.log"
    status=1
  fi
  return "$status"
}

run_client() {
  local backend="$1" out="$REPORTS/client-$backend" status
  mkdir -p "$out"
  set +e
  PORT="$(free_port)" AGENT="wskit-$backend" OUTDIR="$out" EXCLUDE="$exclude" \
    TIMEOUT="$TIMEOUT" SUMMARIZE_ARGS="${summarize_args[*]:-}" \
    bash "$TOOLS/test_client.sh" -- "$PY" "$ROOT/compliance/client.py" \
    --backend "$backend" "{url}" "{agent}"
  status=$?
  set -e
  if grep -q Traceback "$out/client.log"; then
    log "the client testee ($backend) logged a traceback: see $out/client.log"
    status=1
  fi
  return "$status"
}

overall=0
results=()
started=$(date +%s)
for side in $sides; do
  for backend in $backends; do
    log "== $side, $backend, $([ "$full" = 1 ] && echo 'all cases' || echo "all but $exclude")"
    t0=$(date +%s)
    status=0
    "run_$side" "$backend" || status=$?
    [ "$status" = 0 ] || overall=1
    line="$(python3 "$TOOLS/summarize.py" "$REPORTS/$side-$backend" 2>/dev/null | tail -n 1 || true)"
    results+=("$side $backend ($(( $(date +%s) - t0 )) s, exit $status): ${line:-no report}")
  done
done

echo
echo "== Autobahn|Testsuite summary ($(( $(date +%s) - started )) s; reports in $REPORTS)"
for r in "${results[@]}"; do echo "  $r"; done
if [ "$overall" = 0 ]; then
  echo "compliance: PASSED (no case FAILED)"
else
  echo "compliance: FAILED (see the FAILED or MISSING lines above)"
fi
exit "$overall"
