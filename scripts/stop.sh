#!/usr/bin/env bash
# `npm stop`: stops the gateway that `npm start` started, and nothing else.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${KEYFLEET_DATA_DIR:=$repo_root/.keyfleet}"
pid_file="$KEYFLEET_DATA_DIR/gateway.pid"

[[ -f $pid_file ]] || exit 0
pid=$(cat "$pid_file")
# Only a process that is still our gateway: a stale pid may have been reused by another program.
if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'gateway/dist/main.js'; then
  kill -TERM "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  printf 'stop: gateway (pid %s) stopped\n' "$pid" >&2
fi
rm -f "$pid_file"
