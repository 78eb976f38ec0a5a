#!/usr/bin/env bash
# `npm run scale`: aggregate throughput, CPU per transaction and memory of Fabric's processes with
# 1, 2 and 4 shard channels (bench/dist/scale.js --up): one network per shard count under
# .fabric/scale, ports from 16000, each taken down at the end, failed or interrupted too.
# Prints tables and writes bench/results/scale.json. See BENCHMARKS.md and docs/scaling.md.
set -euo pipefail

case "${1:-}" in
  -h | --help)
    cat <<'EOF_USAGE'
Usage: scripts/scale.sh [options of bench/dist/scale.js]

  --shards LIST (1,2,4)  --workloads keyfleet,baseline  --concurrency N per shard (16)
  --seconds N per round (15)  --max-tx N per shard and round (3000)  --repeats N (2)
  --warm-seconds N (5)  --out FILE (bench/results/scale.json)
Environment: KEYFLEET_SCALE_DIR (default .fabric/scale), KEYFLEET_SCALE_PORT_BASE (default 16000).
EOF_USAGE
    exit 0
    ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
: "${KEYFLEET_SCALE_DIR:=$repo_root/.fabric/scale}"
: "${KEYFLEET_SCALE_PORT_BASE:=16000}"

bash scripts/bootstrap.sh
npx tsc -b bench

scale_pid=
stop_all() {
  local status=$? net
  trap - EXIT INT TERM
  if [[ -n $scale_pid ]] && kill -0 "$scale_pid" 2>/dev/null; then
    kill -TERM "$scale_pid" 2>/dev/null || true
    wait "$scale_pid" 2>/dev/null || true
  fi
  for net in "$KEYFLEET_SCALE_DIR"/shards-*/; do
    [[ -d $net ]] && bash network/network.sh down --dir "$net" >/dev/null 2>&1
  done
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

node bench/dist/scale.js --up --work-dir "$KEYFLEET_SCALE_DIR" --port-base "$KEYFLEET_SCALE_PORT_BASE" "$@" &
scale_pid=$!
wait "$scale_pid"
