#!/usr/bin/env bash
# `npm stop`: stops what `npm start` started — the gateway, the verifier, the console and the Fabric network
# (whose data goes with it; `KEYFLEET_KEEP_NETWORK=1` keeps the network running) — and nothing else.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${KEYFLEET_DATA_DIR:=$repo_root/.keyfleet}"

# Stops the service whose pid file is NAME.pid, only if that pid still runs SCRIPT: a stale pid
# may have been reused by another program.
stop_service() {
  local name=$1 script=$2 pid_file="$KEYFLEET_DATA_DIR/$1.pid" pid
  [[ -f $pid_file ]] || return 0
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$script"; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    printf 'stop: %s (pid %s) stopped\n' "$name" "$pid" >&2
  fi
  rm -f "$pid_file"
}

stop_service gateway gateway/dist/main.js
stop_service verifier gateway/dist/verifier-main.js
stop_service console console/dist/main.js
if [[ ${KEYFLEET_KEEP_NETWORK:-0} != 1 && ${1:-} != --services ]]; then
  bash "$repo_root/network/network.sh" down
fi
