#!/usr/bin/env bash
# `npm run test:multihost`: test/dist/multi-host.test.js, a Fabric network spread over network
# namespaces that the test makes (network/hosts.sh) and removes. Needs root (`ip netns`). Its own
# script, not part of `npm test`: 2 to 4 minutes on a busy 2-core machine.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
[[ $(id -u) == 0 ]] || {
  echo "test:multihost: needs root to make network namespaces (ip netns)" >&2
  exit 1
}
port_base=${KEYFLEET_TEST_PORT_BASE:-17000}

bash scripts/bootstrap.sh
npx tsc -b

# The test removes its hosts and processes itself; this does it too when mocha is interrupted.
cleanup() {
  bash network/network.sh down --dir "$repo_root/.fabric/multi-host-$port_base" >/dev/null 2>&1 || true
  bash network/hosts.sh down "kf$port_base" || true
}
trap cleanup EXIT
npx mocha --reporter ./scripts/mocha-summary-reporter.cjs --enable-source-maps --timeout 600000 test/dist/multi-host.test.js
