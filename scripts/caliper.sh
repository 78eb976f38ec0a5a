#!/usr/bin/env bash
# `npm run caliper`: Hyperledger Caliper 0.6.0 as an independent load generator for keyfleet's
# chaincode, on a Fabric network of its own (network/network.sh, dev profile, .fabric/caliper,
# ports from 15800), taken down at the end, failed or interrupted too. Caliper is installed apart
# from keyfleet's dependencies (bench/caliper, its own lockfile). Reports: bench/results/caliper/.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: scripts/caliper.sh

Installs Caliper into bench/caliper/node_modules (npm ci, once), builds bench/, starts a Fabric
network (dev profile) in $KEYFLEET_CALIPER_NETWORK_DIR (default .fabric/caliper) on ports from
$KEYFLEET_CALIPER_PORT_BASE (default 15800), then runs two Caliper benchmarks on it:
  bench/caliper/benchmark-baseline.yaml  Put of bench/baseline-chaincode (the bench's baseline)
  bench/caliper/benchmark-keyfleet.yaml  EnrolDevice, RegisterKey, RotateKey, RecordAttestationBatch
and takes the network down. Each round runs 30 s with 32 transactions in flight (2 workers).
Writes bench/results/caliper/: report-*.html (Caliper's reports), caliper-*.log, and
summary.json / summary.md (every round's figures, also printed).
Environment: KEYFLEET_CALIPER_KEEP_NETWORK=1 leaves the network up for a look (network.sh down --dir …).
EOF_USAGE
}
# No options: the rounds are in the benchmark files, the network in the environment.
if (($# > 0)); then
  if [[ $1 == -h || $1 == --help ]]; then usage && exit 0; fi
  usage >&2
  exit 2
fi

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
: "${KEYFLEET_CALIPER_NETWORK_DIR:=$repo_root/.fabric/caliper}"
: "${KEYFLEET_CALIPER_PORT_BASE:=15800}"
readonly results=bench/results/caliper
log() { printf 'caliper: %s\n' "$*" >&2; }

bash scripts/bootstrap.sh
# Caliper and its Fabric binding (the packages `caliper bind --caliper-bind-sut fabric:2.4` would
# install, pinned in bench/caliper/package.json) stay out of the root workspaces: npm ci there.
if [[ ! -f bench/caliper/node_modules/.package-lock.json ||
  bench/caliper/package-lock.json -nt bench/caliper/node_modules/.package-lock.json ]]; then
  log "installing Caliper 0.6.0 into bench/caliper/node_modules"
  npm ci --prefix bench/caliper --no-fund --no-audit --loglevel=error
fi
npx tsc -b bench

# Caliper's manager runs in a session of its own (setsid), with the workers it forks: stopping
# that process group stops them all, even a worker its manager left behind after a failed round.
caliper_pid=
stop_caliper() {
  [[ -n $caliper_pid ]] || return 0
  kill -TERM -- "-$caliper_pid" 2>/dev/null || true
  wait "$caliper_pid" 2>/dev/null || true
  caliper_pid=
}
stop_all() {
  local status=$?
  trap - EXIT INT TERM
  stop_caliper
  if [[ ${KEYFLEET_CALIPER_KEEP_NETWORK:-0} == 1 ]]; then
    log "the network stays up: network/network.sh down --dir $KEYFLEET_CALIPER_NETWORK_DIR"
  else
    bash network/network.sh down --dir "$KEYFLEET_CALIPER_NETWORK_DIR" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One Caliper benchmark: its manager (which forks the workers) in the background, so that the
# traps run as soon as a signal arrives.
run_caliper() {
  local name=$1 status=0
  log "Caliper benchmark $name (bench/caliper/benchmark-$name.yaml)"
  setsid bench/caliper/node_modules/.bin/caliper launch manager \
    --caliper-workspace . \
    --caliper-networkconfig "$results/network-$name.json" \
    --caliper-benchconfig "bench/caliper/benchmark-$name.yaml" \
    --caliper-report-path "$results/report-$name.html" \
    --caliper-flow-only-test >"$results/caliper-$name.log" 2>&1 &
  caliper_pid=$!
  wait "$caliper_pid" || status=$?
  stop_caliper
  if ((status != 0)); then
    tail -n 30 "$results/caliper-$name.log" >&2
    log "Caliper failed; its log: $results/caliper-$name.log"
    return "$status"
  fi
}

rm -rf "$results"
mkdir -p "$results"
# A fresh ledger every run: whatever an earlier, interrupted run left is removed first.
bash network/network.sh down --dir "$KEYFLEET_CALIPER_NETWORK_DIR" >/dev/null
log "Fabric network (dev profile) in $KEYFLEET_CALIPER_NETWORK_DIR, ports from $KEYFLEET_CALIPER_PORT_BASE"
bash network/network.sh up --profile dev --dir "$KEYFLEET_CALIPER_NETWORK_DIR" --port-base "$KEYFLEET_CALIPER_PORT_BASE"

# network.sh serves a network's chaincode packages from one pair of chaincode servers, so the
# baseline runs first, then keyfleet's chaincode replaces it (as in npm run bench).
bash network/network.sh deploy bench/baseline-chaincode --name baseline --dir "$KEYFLEET_CALIPER_NETWORK_DIR"
node bench/dist/caliper/prepare.js --network-dir "$KEYFLEET_CALIPER_NETWORK_DIR" --out "$results" --contract baseline
run_caliper baseline

bash network/network.sh deploy --dir "$KEYFLEET_CALIPER_NETWORK_DIR"
node bench/dist/caliper/prepare.js --network-dir "$KEYFLEET_CALIPER_NETWORK_DIR" --out "$results" --contract keyfleet
run_caliper keyfleet

node bench/dist/caliper/summary.js "$results"
