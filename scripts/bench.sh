#!/usr/bin/env bash
# `npm run bench`: one benchmark run on a Fabric network of its own (network/network.sh, dev
# profile, .fabric/bench, ports from 15000), taken down at the end, failed or interrupted too.
# Prints a table and writes bench/results/latest.json. See BENCHMARKS.md.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: scripts/bench.sh [bench options]

Starts its own Fabric network (dev profile) in $KEYFLEET_BENCH_NETWORK_DIR (default .fabric/bench)
on ports from $KEYFLEET_BENCH_PORT_BASE (default 15000), runs bench/dist/bench.js on it, and takes
the network down at the end. Options are passed to bench/dist/bench.js:
  --devices N       virtual devices (default 64)       --ops N        operations per run (default 96)
  --runs N          timed runs per row, median (3)     --warmup N     warm-up operations (default 32)
  --baseline-ops N  operations per baseline run (480)
  --concurrency N   operations in flight (default 32)  --batch N      Merkle batch size (default 32)
  --signs N         signatures per HSM run (10000)     --out FILE     (default bench/results/latest.json)
  --token-keys LIST rotations with N keys on the gateway's token (default 100,1000; add 10000 for
                    the slow row: ~28 min, filling and emptying the token)   --token-ops N (32)
Environment: KEYFLEET_BENCH_KEEP_NETWORK=1 leaves the network up for a look (network.sh down --dir …).
EOF_USAGE
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
: "${KEYFLEET_BENCH_NETWORK_DIR:=$repo_root/.fabric/bench}"
: "${KEYFLEET_BENCH_PORT_BASE:=15000}"
log() { printf 'bench: %s\n' "$*" >&2; }

bash scripts/bootstrap.sh
npx tsc -b bench

bench_pid=
stop_all() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $bench_pid ]] && kill -0 "$bench_pid" 2>/dev/null; then
    # bench.js stops the gateway and verifier it started on SIGTERM.
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  if [[ ${KEYFLEET_BENCH_KEEP_NETWORK:-0} == 1 ]]; then
    log "the network stays up: network/network.sh down --dir $KEYFLEET_BENCH_NETWORK_DIR"
  else
    bash network/network.sh down --dir "$KEYFLEET_BENCH_NETWORK_DIR" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh ledger every run: whatever an earlier, interrupted run left is removed first.
bash network/network.sh down --dir "$KEYFLEET_BENCH_NETWORK_DIR" >/dev/null
log "Fabric network (dev profile) in $KEYFLEET_BENCH_NETWORK_DIR, ports from $KEYFLEET_BENCH_PORT_BASE"
bash network/network.sh up --profile dev --dir "$KEYFLEET_BENCH_NETWORK_DIR" --port-base "$KEYFLEET_BENCH_PORT_BASE"

# In the background so that the traps run as soon as a signal arrives, not when node exits.
node bench/dist/bench.js --network-dir "$KEYFLEET_BENCH_NETWORK_DIR" "$@" &
bench_pid=$!
wait "$bench_pid"
