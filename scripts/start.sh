#!/usr/bin/env bash
# `npm start`: everything keyfleet needs on this machine: the Fabric network (two organisations,
# chaincode deployed), the operator's HSM token and gateway on https://127.0.0.1:8080, Org2's
# verifier with its own token on https://127.0.0.1:8081, the auditor's console on
# https://127.0.0.1:8082, then the demo fleet.
# Idempotent: a second run finds the network, tokens, keys and credentials and restarts the services.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: scripts/start.sh

Bootstraps the machine, starts the Fabric network (network/network.sh up + deploy), creates the
two SoftHSM tokens and their keys, an operator's credentials, and starts the gateway and the
verifier and the auditor's console in the background (logs: .keyfleet/<name>.log; stop: npm stop).
All serve HTTPS (TLS 1.3); clients trust .keyfleet/device-ca.pem (KEYFLEET_CA_FILE) for the
gateway, .keyfleet/verifier/tls-ca.pem (Org2's TLS CA) for the verifier and the console.

Environment:
  KEYFLEET_HTTP_PORT           gateway port (default 8080)
  KEYFLEET_VERIFIER_HTTP_PORT  verifier port (default 8081)
  KEYFLEET_CONSOLE_HTTP_PORT   auditor's console port (default 8082)
  KEYFLEET_NETWORK_PORT_BASE   first port of the Fabric network (default 7000)
  KEYFLEET_DEMO=0              skip the demo fleet (50 devices enrol, attest, rotate; one is tampered)
  KEYFLEET_SHARDS=N            a sharded network (network.sh up --shards N, 1 to 8): N shard channels and
                               a governance channel; a first shard map places group demo-fleet-K on
                               shard K-1, and the demo fleet is spread over those N groups. An existing
                               network keeps its channels: npm stop first to change them
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
: "${KEYFLEET_HTTP_HOST:=127.0.0.1}"
: "${KEYFLEET_HTTP_PORT:=8080}"
export KEYFLEET_DATA_DIR KEYFLEET_HTTP_HOST KEYFLEET_HTTP_PORT

log() { printf 'start: %s\n' "$*" >&2; }

bash scripts/bootstrap.sh

log "Fabric network (network/network.sh up && network/network.sh deploy)"
shard_args=()
if [[ -n ${KEYFLEET_SHARDS:-} ]]; then shard_args=(--shards "$KEYFLEET_SHARDS"); fi
bash network/network.sh up "${shard_args[@]}"
bash network/network.sh deploy
export KEYFLEET_FABRIC_CONNECTION="$repo_root/.fabric/network/connection.json"

log "HSM tokens and keys: the operator's, and Org2's verifier's"
KEYFLEET_HSM_DIR="$repo_root/.softhsm" bash scripts/softhsm-init.sh >/dev/null
KEYFLEET_HSM_DIR="$repo_root/.softhsm/verifier" KEYFLEET_HSM_TOKEN=keyfleet-verifier KEYFLEET_HSM_KEY_SET=verifier \
  bash scripts/softhsm-init.sh >/dev/null
export SOFTHSM2_CONF="$repo_root/.softhsm/softhsm2.conf"
export KEYFLEET_HSM_PIN_FILE="$repo_root/.softhsm/user-pin"

mkdir -p "$KEYFLEET_DATA_DIR"
export KEYFLEET_AUTH_JWKS="$KEYFLEET_DATA_DIR/auth/jwks.json"
operator="$KEYFLEET_DATA_DIR/operator.json"
if [[ -f $KEYFLEET_AUTH_JWKS ]] && ! grep -q '"role"' "$KEYFLEET_AUTH_JWKS"; then
  # Keys listed before each key named its subject and role are no longer accepted: make new ones.
  log "replacing credentials made by an earlier version (their keys name no role)"
  rm -f "$operator" "$KEYFLEET_AUTH_JWKS"
fi
if [[ ! -f $operator ]]; then
  log "operator credentials in $operator"
  node gateway/dist/cli/keyfleet.js credentials create operator --role operator --out "$operator" >/dev/null
fi

bash scripts/stop.sh --services >/dev/null
: "${KEYFLEET_VERIFIER_HTTP_PORT:=8081}"
url="https://$KEYFLEET_HTTP_HOST:$KEYFLEET_HTTP_PORT"
verifier_url="https://127.0.0.1:$KEYFLEET_VERIFIER_HTTP_PORT"
# The CA certificates the services publish at start: what their clients trust.
ca_file="$KEYFLEET_DATA_DIR/device-ca.pem"
verifier_ca_file="$KEYFLEET_DATA_DIR/verifier/tls-ca.pem"
export KEYFLEET_VERIFIER_URL=$verifier_url KEYFLEET_VERIFIER_CA_FILE=$verifier_ca_file KEYFLEET_CA_FILE=$ca_file
for answering in "$url" "$verifier_url"; do
  # Only whether anything listens there, so no certificate check (--insecure), plain or TLS.
  if curl -fsS --insecure "$answering/healthz" >/dev/null 2>&1 || curl -fsS "${answering/https:/http:}/healthz" >/dev/null 2>&1; then
    log "something else already answers at $answering; choose another KEYFLEET_HTTP_PORT / KEYFLEET_VERIFIER_HTTP_PORT"
    exit 1
  fi
done

# Starts NAME in the background and waits for URL/healthz (trusting CA_FILE when it is https);
# fails with the end of its log.
start_service() {
  local name=$1 check=$2 ca=$3
  shift 3
  local log_file="$KEYFLEET_DATA_DIR/$name.log" pid_file="$KEYFLEET_DATA_DIR/$name.pid"
  log "starting the $name (log: $log_file)"
  setsid "$@" >>"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
  for _ in $(seq 1 300); do
    # The CA file appears when the service has made its certificate, just before it listens.
    if [[ -z $ca ]]; then
      curl -fsS "$check/healthz" >/dev/null 2>&1 && return 0
    elif [[ -f $ca ]]; then
      curl -fsS --cacert "$ca" "$check/healthz" >/dev/null 2>&1 && return 0
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      log "the $name exited; last lines of $log_file:"
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    # Waiting on the health endpoint: each try is a real request; this only paces them.
    sleep 0.2
  done
  log "the $name did not answer $check/healthz in time; see $log_file"
  exit 1
}

start_service gateway "$url" "$ca_file" node gateway/dist/main.js
# Org2's verifier: its own token and store, its own Fabric identity from Org2's CA; it pins the
# device CA certificate the gateway has just written.
start_service verifier "$verifier_url" "$verifier_ca_file" env \
  SOFTHSM2_CONF="$repo_root/.softhsm/verifier/softhsm2.conf" \
  KEYFLEET_VERIFIER_HSM_URI=pkcs11:token=keyfleet-verifier \
  KEYFLEET_VERIFIER_HSM_PIN_FILE="$repo_root/.softhsm/verifier/user-pin" \
  KEYFLEET_VERIFIER_HTTP_PORT="$KEYFLEET_VERIFIER_HTTP_PORT" \
  KEYFLEET_VERIFIER_DATA_DIR="$KEYFLEET_DATA_DIR/verifier" \
  KEYFLEET_VERIFIER_DEVICE_CA_CERT="$KEYFLEET_DATA_DIR/device-ca.pem" \
  KEYFLEET_VERIFIER_FABRIC_CONNECTION="$KEYFLEET_FABRIC_CONNECTION" \
  node gateway/dist/verifier-main.js

# A sharded network's first shard map (docs/gateway.md, "Shards"): demo-fleet-K on shard K-1,
# everything else on shard 0. Written once: a map already on the ledger is the operator's.
if [[ -n ${KEYFLEET_SHARDS:-} ]]; then
  export KEYFLEET_CREDENTIALS=$operator KEYFLEET_URL=$url
  overview=$(node gateway/dist/cli/keyfleet.js shards --json)
  if [[ $(jq -r '.map == null' <<<"$overview") == true ]]; then
    map_file="$KEYFLEET_DATA_DIR/shard-map.json"
    # shellcheck disable=SC2016 # a JavaScript template literal, not a shell expansion
    node -e '
      const { channels } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const rules = channels.shards.map((shard, k) => ({
        match: { group: `demo-fleet-${k + 1}`, location: null, function: null },
        shard,
      }));
      console.log(JSON.stringify({ shards: channels.shards, rules, default: channels.shards[0] }, null, 2));
    ' "$KEYFLEET_FABRIC_CONNECTION" >"$map_file"
    log "writing the first shard map ($map_file): group demo-fleet-K on shard K-1"
    node gateway/dist/cli/keyfleet.js shards set-map --file "$map_file" >&2
  fi
fi

# The auditor's console: reads the ledger as Org2's auditor (Org2's peer, the auditor identity of
# the connection description), never through the gateway; the page verifies each record itself.
: "${KEYFLEET_CONSOLE_HTTP_PORT:=8082}"
console_url="https://127.0.0.1:$KEYFLEET_CONSOLE_HTTP_PORT"
if curl -fsS --insecure "$console_url/healthz" >/dev/null 2>&1 || curl -fsS "${console_url/https:/http:}/healthz" >/dev/null 2>&1; then
  log "something else already answers at $console_url; choose another KEYFLEET_CONSOLE_HTTP_PORT"
  exit 1
fi
# The console holds no HSM: Org2's TLS CA (the tls-ca key in the verifier's token) issues its
# certificate and key, a fresh one at each start, into the console's own data directory (0600).
console_dir="$KEYFLEET_DATA_DIR/console"
log "issuing the console's TLS certificate (Org2's TLS CA) into $console_dir"
SOFTHSM2_CONF="$repo_root/.softhsm/verifier/softhsm2.conf" \
  KEYFLEET_VERIFIER_HSM_URI=pkcs11:token=keyfleet-verifier \
  KEYFLEET_VERIFIER_HSM_PIN_FILE="$repo_root/.softhsm/verifier/user-pin" \
  KEYFLEET_VERIFIER_DATA_DIR="$KEYFLEET_DATA_DIR/verifier" \
  node gateway/dist/verifier-tls-cli.js issue-console-cert --out "$console_dir" >/dev/null
start_service console "$console_url" "$verifier_ca_file" env KEYFLEET_CONSOLE_HTTP_PORT="$KEYFLEET_CONSOLE_HTTP_PORT" \
  KEYFLEET_CONSOLE_TLS_CERT="$console_dir/tls-cert.pem" KEYFLEET_CONSOLE_TLS_KEY="$console_dir/tls-key.pem" \
  KEYFLEET_CONSOLE_FABRIC_CONNECTION="$KEYFLEET_FABRIC_CONNECTION" node console/dist/main.js

# The demo's first group: on shard 0, the channel the console reads.
demo_group=demo-fleet
if [[ ${KEYFLEET_SHARDS:-1} != 1 ]]; then demo_group=demo-fleet-1; fi
cat <<EOF_READY

keyfleet gateway ready at $url, Org2's verifier at $verifier_url, on the Fabric network in .fabric/network
Auditor's console (read-only, verified in your browser): $console_url/#/fleet?group=$demo_group
  (its certificate is issued by Org2's TLS CA: trust $verifier_ca_file in your browser)
  curl --cacert $ca_file $url/healthz
  curl --cacert $ca_file $url/openapi.json
  network/network.sh status
  export KEYFLEET_CREDENTIALS=$operator KEYFLEET_CA_FILE=$ca_file
  ./keyfleet devices token sensor-1 --group lab --location bench --function demo
  ./keyfleet shards
Stop it all with: npm stop
EOF_READY
if [[ ${KEYFLEET_DEMO:-1} != 0 ]]; then bash scripts/demo.sh; fi
