#!/usr/bin/env bash
# `npm run faults`: the fault suite on networks of its own (network/network.sh, ha and bft
# profiles, .fabric/faults-ha and .fabric/faults-bft, or faults-ha-hsm and faults-bft-hsm with
# --hsm; ports from 13000, or --port-base), taken down at the end,
# failed or interrupted too. Prints one table per profile; exits 1 if anything acknowledged was
# lost or applied twice, or the reconcile finds disagreement. See docs/operations.md.
set -euo pipefail

case "${1:-}" in
  -h | --help)
    cat <<'EOF_USAGE'
Usage: npm run faults -- [--profile ha|bft|both] [--hsm] [--devices N] [--seconds S] [--port-base P]

Under a steady load of rotations and attestations from the fleet simulator, kills with SIGKILL in
turn an orderer (the Raft leader on ha), a peer of each organisation, a chaincode server, a Fabric
CA, the operator gateway and the verifier, and starts each again (network.sh start NAME). S seconds
of load before each kill, S while it is down and S after the restart (default 4); N devices
(default 12). Then reconciles through Org2's auditor: the devices, the HSM and the ledger.
--hsm: the networks are made with network.sh up --hsm (every peer's, orderer's, admin's and
Fabric CA's signing key in a SoftHSM token). --port-base P: the first port (default 13000; each
profile takes 200).
EOF_USAGE
    exit 0
    ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
bash scripts/bootstrap.sh
stop_networks() {
  local profile
  for profile in ha bft ha-hsm bft-hsm; do
    if [[ -d $repo_root/.fabric/faults-$profile ]]; then
      bash network/network.sh down --dir "$repo_root/.fabric/faults-$profile" >/dev/null 2>&1 || true
    fi
  done
}
trap stop_networks EXIT
node test/dist/faults/cli.js "$@"
