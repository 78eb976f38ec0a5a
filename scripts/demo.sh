#!/usr/bin/env bash
# The demo at the end of `npm start`: a fleet of virtual devices against the running gateway.
# They enrol, attest (one runs a modified application and is caught and suspended) and rotate
# their data keys; then the audit trail of two of them is read back from the ledger.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: scripts/demo.sh

Environment:
  KEYFLEET_URL            gateway (default https://127.0.0.1:${KEYFLEET_HTTP_PORT:-8080})
  KEYFLEET_CA_FILE        the CA certificate the gateway's certificate chains to (default $KEYFLEET_DATA_DIR/device-ca.pem)
  KEYFLEET_CREDENTIALS    operator credentials (default .keyfleet/operator.json)
  KEYFLEET_DEMO_DEVICES   fleet size (default 50)
  KEYFLEET_DEMO_TAMPERED  devices with a modified application (default 1)
  KEYFLEET_SHARDS         spread the fleet over this many groups, demo-fleet-1 … (npm start's first
                          shard map puts each on its own shard)
EOF_USAGE
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
: "${KEYFLEET_DATA_DIR:=$repo_root/.keyfleet}"
: "${KEYFLEET_URL:=https://127.0.0.1:${KEYFLEET_HTTP_PORT:-8080}}"
: "${KEYFLEET_CA_FILE:=$KEYFLEET_DATA_DIR/device-ca.pem}"
: "${KEYFLEET_CREDENTIALS:=$KEYFLEET_DATA_DIR/operator.json}"
: "${KEYFLEET_DEMO_DEVICES:=50}"
: "${KEYFLEET_DEMO_TAMPERED:=1}"
export KEYFLEET_URL KEYFLEET_CREDENTIALS KEYFLEET_CA_FILE

if ! curl -fsS --cacert "$KEYFLEET_CA_FILE" "$KEYFLEET_URL/healthz" >/dev/null 2>&1; then
  printf 'demo: no gateway answers at %s/healthz; run npm start first\n' "$KEYFLEET_URL" >&2
  exit 1
fi

# Device ids must be new on a ledger that remembers earlier runs: one prefix per run.
prefix="demo$(date +%s)"
printf '\nDemo: %s virtual devices (%s with a modified application) enrol, attest and rotate\n' \
  "$KEYFLEET_DEMO_DEVICES" "$KEYFLEET_DEMO_TAMPERED" >&2
node agent/dist/fleet/cli.js \
  --devices "$KEYFLEET_DEMO_DEVICES" --tampered "$KEYFLEET_DEMO_TAMPERED" \
  --rounds 1 --prefix "$prefix" --group demo-fleet --groups "${KEYFLEET_SHARDS:-1}" --audit
if [[ -n ${KEYFLEET_SHARDS:-} ]]; then
  printf '\nThe fleet over the shards (./keyfleet shards):\n' >&2
  node gateway/dist/cli/keyfleet.js shards
fi

demo_group=demo-fleet
if [[ ${KEYFLEET_SHARDS:-1} != 1 ]]; then demo_group=demo-fleet-1; fi
cat <<EOF_NEXT

Next:
  API            $KEYFLEET_URL   (OpenAPI: $KEYFLEET_URL/openapi.json, metrics: $KEYFLEET_URL/metrics)
  operator CLI   export KEYFLEET_CREDENTIALS=$KEYFLEET_CREDENTIALS KEYFLEET_CA_FILE=$KEYFLEET_CA_FILE
                 ./keyfleet devices list --group $demo_group
                 ./keyfleet audit device ${prefix}-00001
  bigger fleet   node agent/dist/fleet/cli.js --devices 2000 --tampered 5 --rounds 3 --prefix big
  stop           npm stop
EOF_NEXT
