#!/usr/bin/env bash
# `npm test`: bootstrap, lint, unit tests, then the integration suites against real SoftHSM
# and a real Fabric network that the suites start on their own ports and always stop.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

step() { printf '\n== %s\n' "$*"; }

step bootstrap
bash scripts/bootstrap.sh

step lint
npx eslint .
npx prettier --check .
git ls-files -z -- '*.sh' '.ci/run' keyfleet keyfleet-agent 'network/builders/*/bin/*' | xargs -0 shellcheck

step "unit tests"
npx mocha --config .mocharc.unit.json

step "integration tests"
# The suites start their own network (test/src/support/network.ts); this stops it even when
# mocha is interrupted before its teardown runs.
test_port_base=${KEYFLEET_TEST_PORT_BASE:-17000}
test_network_dir="$repo_root/.fabric/test-$test_port_base"
stop_test_networks() {
  local network
  # The suites' network, the one beside it, the --hsm and --shards ones (network-hsm.test.ts,
  # network-shards.test.ts), and those of the fault suite and the soak (faults.test.ts, soak.test.ts).
  for network in "$test_network_dir" "$test_network_dir-beside" "$test_network_dir-hsm" "$test_network_dir-shards" \
    "$repo_root/.fabric/faults-test-$((test_port_base + 350))" \
    "$repo_root/.fabric/soak-test-$((test_port_base + 460))"; do
    bash network/network.sh down --dir "$network" >/dev/null 2>&1 || true
  done
}
trap stop_test_networks EXIT
npx mocha --config .mocharc.integration.json
