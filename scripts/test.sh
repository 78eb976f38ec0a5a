#!/usr/bin/env bash
# `npm test`: bootstrap, lint, unit tests, then the integration suites against real SoftHSM
# and, where the Fabric binaries are installed, a real Fabric network that the suites start
# on their own ports and always stop.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

step() { printf '\n== %s\n' "$*"; }

step bootstrap
bash scripts/bootstrap.sh

step lint
npx eslint .
npx prettier --check .
git ls-files -z -- '*.sh' '.ci/run' keyfleet keyfleet-agent | xargs -0 shellcheck

step "unit tests"
npx mocha --config .mocharc.unit.json

step "integration tests"
npx mocha --config .mocharc.integration.json
