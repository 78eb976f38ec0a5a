#!/usr/bin/env bash
# `npm run soak [-- --minutes M] [--devices N]`: a steady mixed load for M minutes (default 30) on a
# dev network of its own (.fabric/soak, ports from 13400), taken down at the end, failed or
# interrupted too; the RSS of the gateway, the verifier and the chaincode servers sampled each
# minute. Exits 1 if memory grows without bound or anything acknowledged is lost. docs/operations.md.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
bash scripts/bootstrap.sh
trap 'bash network/network.sh down --dir "$repo_root/.fabric/soak" >/dev/null 2>&1 || true' EXIT
node test/dist/faults/soak-cli.js "$@"
