#!/usr/bin/env bash
# keyfleet's Fabric network: real orderers, peers, Fabric CAs and chaincode servers as native
# processes on 127.0.0.1 (or on the hosts of `up --hosts`), with TLS everywhere. The verbs follow
# Fabric's test network.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: network/network.sh VERB [options]

Verbs:
  up [--profile dev|ha|bft] [--hsm] [--shards N] [--hosts FILE]
                              start the network (idempotent; restarts a stopped or crashed one
                              on its existing data)
                                dev  one Raft orderer, Org1 and Org2 with one peer each
                                ha   three Raft orderers, two peers per organisation
                                bft  four SmartBFT orderers, one peer per organisation
                              --hsm: every peer's, orderer's, admin's and Fabric CA's signing key
                              is made and kept in a SoftHSM token (one per organisation: Org1,
                              Org2, Orderer) through Fabric's BCCSP PKCS11; the identities are
                              enrolled through the Fabric CAs (a third CA, ca.orderer, serves the
                              orderer organisation). TLS keys stay files (Fabric reads them only
                              from files). A network is made with or without --hsm for good.
                              --shards N (1-8): N shard channels, keyfleet (shard 0, today's
                              channel) and keyfleet-shard1 … keyfleet-shardN-1, plus the channel
                              keyfleet-governance that holds the shard map; every peer joins all
                              of them. Without it: the one channel keyfleet.
                              --hosts FILE: place the nodes on other hosts, given as Linux
                              network namespaces that the caller made (network/hosts.sh makes
                              a private set). Lines "UNIT NAMESPACE ADDRESS": UNIT orderer (the
                              orderers, and ca.orderer), org1 and org2 (the org's peers, CA and
                              chaincode server, which listens on that host's loopback only),
                              client (where network.sh itself and the clients run: every verb
                              re-runs itself there). ADDRESS is a private IPv4 address of the
                              namespace. Without it every node listens on 127.0.0.1.
  deploy [PATH] [--name NAME] deploy the chaincode in PATH (default: chaincode/) as a service,
                              one chaincode server per organisation, endorsed by both; changed
                              code is committed with the next sequence number. NAME (default
                              keyfleet) is the chaincode name: another name is another state
                              namespace served by the same chaincode servers. --lang node
                              deploys the conventional way instead: a package made by
                              `peer lifecycle chaincode package --lang node`, built and
                              launched by the peer through network/builders/node. The chaincode
                              is committed on every channel of the network (the same package,
                              served to all channels by the same chaincode servers). The network
                              has one pair of chaincode servers: deploying another folder replaces
                              their code, and deploying the first again (already committed) puts
                              its code back
  status                      each process, its health endpoint, the block height of each
                              channel on each peer
  logs [NAME]                 the last lines of a process's log (no NAME: list the logs)
  start NAME                  start one stopped or crashed process of a running network on its
                              data (ca.org1, orderer0, peer1.org2, cc.org1 …), the others left
                              running, and wait until it serves again (up restarts everything)
  down [--keep]               stop what this network started; remove its data unless --keep
  env ORG [IDENTITY] [--channel C]
                              shell exports for Fabric's peer CLI as IDENTITY (admin, operator,
                              verifier, auditor, application; default admin) of ORG (Org1, Org2);
                              on an --hsm network the admin's exports read the token PIN from
                              its file when evaluated (the PIN itself is never printed);
                              KEYFLEET_CHANNEL is C (default keyfleet), one of the network's
                              channels

Options (or environment):
  --dir DIR        KEYFLEET_NETWORK_DIR         data directory (default: <repo>/.fabric/network)
  --port-base N    KEYFLEET_NETWORK_PORT_BASE   first of ~110 ports used (default: 7000)
                   (a network remembers its port base; later verbs need only --dir)
                   KEYFLEET_BATCH_TIMEOUT       orderer batch timeout (default: 200ms)
                   KEYFLEET_FABRIC_LOGGING      FABRIC_LOGGING_SPEC of every node (default: info)

The connection description for the gateway and the tests is DIR/connection.json; its
"channel" is shard 0 (keyfleet) and "channels" lists the shards and the governance channel.
EOF
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly CHANNEL=keyfleet
readonly GOVERNANCE_CHANNEL=keyfleet-governance
readonly CHAINCODE=keyfleet
: "${KEYFLEET_NETWORK_DIR:=$repo_root/.fabric/network}"
port_base_given=${KEYFLEET_NETWORK_PORT_BASE:+yes}
: "${KEYFLEET_NETWORK_PORT_BASE:=7000}"
: "${KEYFLEET_BATCH_TIMEOUT:=200ms}"
: "${KEYFLEET_FABRIC_LOGGING:=info}"

log() { printf 'network: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# --- arguments ------------------------------------------------------------------------------
all_args=("$@")
verb=${1:-}
[[ -n $verb ]] || {
  usage >&2
  exit 2
}
shift
profile=
hsm=false
shards=
env_channel=
keep=false
hosts_given=
cc_name=keyfleet
cc_lang=ccaas
positional=()
while (($# > 0)); do
  case "$1" in
    --profile)
      profile=${2:?--profile needs a value}
      shift 2
      ;;
    --dir)
      KEYFLEET_NETWORK_DIR=${2:?--dir needs a value}
      shift 2
      ;;
    --port-base)
      port_base_given=yes
      KEYFLEET_NETWORK_PORT_BASE=${2:?--port-base needs a value}
      shift 2
      ;;
    --keep)
      keep=true
      shift
      ;;
    --hsm)
      hsm=true
      shift
      ;;
    --shards)
      shards=${2:?--shards needs a number}
      shift 2
      ;;
    --hosts)
      hosts_given=${2:?--hosts needs a file}
      [[ -f $hosts_given ]] || die "--hosts $hosts_given: no such file"
      hosts_given=$(cd "$(dirname "$hosts_given")" && pwd)/$(basename "$hosts_given")
      shift 2
      ;;
    --channel)
      env_channel=${2:?--channel needs a channel name}
      shift 2
      ;;
    --name)
      cc_name=${2:?--name needs a value}
      shift 2
      ;;
    --lang)
      cc_lang=${2:?--lang needs a value}
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      log "unknown option $1"
      usage >&2
      exit 2
      ;;
    *)
      positional+=("$1")
      shift
      ;;
  esac
done
if ! [[ $KEYFLEET_NETWORK_PORT_BASE =~ ^[0-9]+$ ]] || ((KEYFLEET_NETWORK_PORT_BASE < 1024 || KEYFLEET_NETWORK_PORT_BASE > 65000)); then
  die "the port base must be a number from 1024 to 65000, got $KEYFLEET_NETWORK_PORT_BASE"
fi
mkdir -p "$(dirname "$KEYFLEET_NETWORK_DIR")"
dir=$(cd "$(dirname "$KEYFLEET_NETWORK_DIR")" && pwd)/$(basename "$KEYFLEET_NETWORK_DIR")
# A network remembers its ports: later verbs on the same directory need no --port-base.
if [[ -z $port_base_given && -f $dir/port-base ]]; then KEYFLEET_NETWORK_PORT_BASE=$(cat "$dir/port-base"); fi
base=$KEYFLEET_NETWORK_PORT_BASE
crypto=$dir/crypto
pids=$dir/pids
logs=$dir/logs

# --- hosts: where each node runs ----------------------------------------------------------------
# By default every node listens on 127.0.0.1 of the caller's network namespace. `up --hosts FILE`
# (remembered in DIR/hosts) places each unit (orderer, org1, org2) in a network namespace of its
# own, at its own address, and names the client namespace where this script and the clients run.
declare -A host_ns=() host_addr=()
hosts_file=$dir/hosts
read_hosts() {
  local file=$1 unit ns addr
  while read -r unit ns addr; do
    [[ -z $unit || $unit == \#* ]] && continue
    [[ $unit =~ ^(orderer|org1|org2|client)$ ]] || die "$file: unknown unit $unit (orderer, org1, org2, client)"
    [[ $ns =~ ^[A-Za-z0-9_.-]+$ ]] || die "$file: $unit needs a network namespace name, got '$ns'"
    # Private addresses only (RFC 1918, or loopback): a node is never put where others could reach it.
    [[ $addr =~ ^(10\.[0-9]+|172\.(1[6-9]|2[0-9]|3[01])|192\.168|127\.[0-9]+)\.[0-9]+\.[0-9]+$ ]] ||
      die "$file: $unit needs a private IPv4 address (10/8, 172.16/12, 192.168/16, 127/8), got '$addr'"
    host_ns[$unit]=$ns
    host_addr[$unit]=$addr
  done <"$file"
}
if [[ -n $hosts_given ]]; then
  read_hosts "$hosts_given"
  for unit in orderer org1 org2; do
    [[ -n ${host_ns[$unit]:-} ]] || die "$hosts_given: no line for $unit"
  done
elif [[ -f $hosts_file ]]; then
  read_hosts "$hosts_file"
fi
# A network on hosts is driven from its client namespace: the script re-runs itself there.
if [[ -n ${host_ns[client]:-} && -z ${KEYFLEET_NETWORK_IN_CLIENT:-} ]] && ip netns list | grep -qw -- "${host_ns[client]}"; then
  KEYFLEET_NETWORK_IN_CLIENT=1 exec ip netns exec "${host_ns[client]}" bash "${BASH_SOURCE[0]}" "${all_args[@]}"
fi
unit_addr() { echo "${host_addr[$1]:-127.0.0.1}"; }
unit_of_name() {
  case $1 in
    orderer* | ca.orderer) echo orderer ;;
    *.org1) echo org1 ;;
    *.org2) echo org2 ;;
  esac
}
# The unit listening on PORT, by the port plan below: CAs at +0 (Org1), +2 (orderer), +10 (Org2);
# orderers from +20; Org1's peers from +60, Org2's from +80; chaincode servers at +100 and +101.
unit_of_port() {
  local off=$(($1 - base))
  if ((off < 2)); then echo org1; elif ((off < 10)); then echo orderer; elif ((off < 20)); then echo org2
  elif ((off < 60)); then echo orderer; elif ((off < 80)); then echo org1; elif ((off < 100)); then echo org2
  else echo "org$((off - 99))"; fi
}
is_cc_port() { (($1 - base >= 100)); }
# ADDRESS:PORT of whatever listens on PORT (a chaincode server: its host's loopback).
at() { if is_cc_port "$1"; then echo "127.0.0.1:$1"; else echo "$(unit_addr "$(unit_of_port "$1")"):$1"; fi; }
# The extra subjectAltName entries of a node's TLS certificate on a host of its own.
san_ip() { [[ -n ${host_addr[$1]:-} ]] && printf ',IP:%s' "${host_addr[$1]}"; return 0; }
san_list() { [[ -n ${host_addr[$1]:-} ]] && printf ', %s' "${host_addr[$1]}"; return 0; }

# --- the shape of each profile ----------------------------------------------------------------
# Ports, from the base: CA k at +10k (listen, +1 operations); orderer i at +20+10i (listen,
# +1 admin, +2 operations); peer j of Org1 at +60+10j and of Org2 at +80+10j (listen, +1
# chaincode, +2 operations); the chaincode servers of Org1 and Org2 at +100 and +101.
orderer_count() { case $1 in dev) echo 1 ;; ha) echo 3 ;; bft) echo 4 ;; esac }
peers_per_org() { case $1 in ha) echo 2 ;; *) echo 1 ;; esac }
consensus() { case $1 in bft) echo BFT ;; *) echo etcdraft ;; esac }
# CA 1 and 2 serve Org1 and Org2; on an --hsm network, CA "orderer" (+2, +3) serves the orderers.
ca_port() { if [[ $1 == orderer ]]; then echo $((base + 2)); else echo $((base + 10 * ($1 - 1))); fi; }
orderer_port() { echo $((base + 20 + 10 * $1)); }
peer_port() { echo $((base + 40 + 20 * $1 + 10 * $2)); } # org (1|2), index
cc_port() { echo $((base + 99 + $1)); }
org_domain() { echo "org$1.keyfleet.local"; }
readonly ORDERER_DOMAIN=orderer.keyfleet.local

# --- channels -----------------------------------------------------------------------------------
# An unsharded network has one application channel, keyfleet. `up --shards N` makes N shard
# channels, keyfleet (shard 0, so every client of an unsharded network keeps working) and
# keyfleet-shardK, and keyfleet-governance for the shard map. The helpers below that talk to one
# channel use `ch` (default keyfleet), set by the loops over `channels`.
ch=$CHANNEL
shard_count() { if [[ -f $dir/shards ]]; then cat "$dir/shards"; else echo 1; fi; }
shard_channel() { if (($1 == 0)); then echo "$CHANNEL"; else echo "$CHANNEL-shard$1"; fi; }
channels() {
  local k
  for ((k = 0; k < $(shard_count); k++)); do shard_channel "$k"; done
  if [[ -f $dir/shards ]]; then echo "$GOVERNANCE_CHANNEL"; fi
}
channel_block() { echo "$dir/channels/$1.block"; }

load_fabric() {
  bash "$repo_root/scripts/install-fabric.sh" >/dev/null 2>"$dir.install.log" ||
    die "the Fabric binaries are not installed: $(cat "$dir.install.log")"
  rm -f "$dir.install.log"
  # shellcheck source=/dev/null
  source "${KEYFLEET_CACHE_DIR:-$repo_root/.cache}/fabric.env"
  export PATH="$FABRIC_BIN_DIR:$FABRIC_CA_BIN_DIR:$PATH"
}

# --- processes --------------------------------------------------------------------------------
# Every process runs in its own session (setsid), with its pid in pids/NAME.pid, its log in
# logs/NAME.log and its working directory inside this network's data directory: that is how a
# leftover process is recognised as ours and nobody else's is ever touched.
ours() {
  local pid=$1 cwd
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
  [[ $cwd == "$dir" || $cwd == "$dir"/* ]]
}

alive() {
  local file=$pids/$1.pid pid
  [[ -f $file ]] || return 1
  pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null && ours "$pid"
}

# A caller that sets pin_var and pin_token (locals) hands the process that token's PIN in the
# environment variable pin_var: read from its file in the subshell, never on a command line.
start_process() {
  local name=$1 workdir=$2
  shift 2
  mkdir -p "$pids" "$logs" "$workdir"
  (
    cd "$workdir"
    if [[ -n ${pin_var:-} ]]; then export "$pin_var=$(hsm_pin "$pin_token")"; fi
    local ns=${host_ns[$(unit_of_name "$name")]:-}
    if [[ -n $ns ]]; then set -- ip netns exec "$ns" setsid "$@"; else set -- setsid "$@"; fi
    exec "$@" >>"$logs/$name.log" 2>&1 </dev/null 9>&-
  ) &
  echo $! >"$pids/$name.pid"
}

# Stops processes together: SIGTERM to each (and its process group), up to 5 s for all of them to
# exit, then SIGKILL for what is left.
stop_pids() {
  local pid i left
  for pid in "$@"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for i in $(seq 1 50); do
    left=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=$((left + 1)); done
    ((left == 0)) && return 0
    sleep 0.1
  done
  for pid in "$@"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}

# Stops every process of this network: those with pid files, and any leftover whose working
# directory is inside the data directory (a pid file lost in a crash). Prints how many.
stop_all() {
  local file pid proc found=()
  if [[ -d $pids ]]; then
    for file in "$pids"/*.pid; do
      [[ -f $file ]] || continue
      pid=$(cat "$file")
      if kill -0 "$pid" 2>/dev/null && ours "$pid"; then found+=("$pid"); fi
      rm -f "$file"
    done
  fi
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    if ours "$pid" && [[ $pid != "$$" && $pid != "$BASHPID" && " ${found[*]} " != *" $pid "* ]]; then
      found+=("$pid")
    fi
  done
  ((${#found[@]} == 0)) || stop_pids "${found[@]}"
  echo "${#found[@]}"
}

port_listens() {
  local port=$1 ns
  ns=${host_ns[$(unit_of_port "$port")]:-}
  # A chaincode server listens on its host's loopback: look from inside that host.
  if is_cc_port "$port" && [[ -n $ns ]]; then
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    ip netns exec "$ns" bash -c '(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null' _ "$port"
  else
    (exec 3<>"/dev/tcp/$(unit_addr "$(unit_of_port "$port")")/$port") 2>/dev/null
  fi
}

# Waits until CHECK succeeds, or fails naming the process and its log. The loop only paces
# real checks; it never waits for a fixed time instead of one.
wait_for() {
  local name=$1 what=$2 seconds=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  while ((SECONDS <= deadline)); do
    "$@" && return 0
    if [[ -f $pids/$name.pid ]] && ! alive "$name"; then
      die "$name exited while waiting for $what; last lines of $logs/$name.log:
$(tail -n 15 "$logs/$name.log" 2>/dev/null)"
    fi
    sleep 0.1
  done
  die "$name: $what did not happen within $seconds s; see $logs/$name.log"
}

healthy() { curl -fsS "http://$(at "$1")/healthz" >/dev/null 2>&1; }
ca_ready() { curl -fsS --cacert "$2" "https://$(at "$1")/cainfo" >/dev/null 2>&1; }

# --- node keys in SoftHSM tokens (up --hsm) --------------------------------------------------------
# One token per organisation (Org1, Org2, Orderer) under DIR/hsm/tokens: an organisation's CA,
# nodes and admin share its token, as they would share the organisation's HSM. Each PIN lives in
# DIR/hsm/LABEL.pin (mode 600); processes get it in their environment or in a mode-600 config file,
# never on a command line of theirs and never in a log.
: "${KEYFLEET_PKCS11_LIBRARY:=/usr/lib/softhsm/libsofthsm2.so}"
hsm_dir=$dir/hsm
is_hsm() { [[ -f $dir/hsm-mode ]]; }
token_of() { case $1 in 1) echo Org1 ;; 2) echo Org2 ;; orderer) echo Orderer ;; esac }
hsm_pin() { cat "$hsm_dir/$1.pin"; }

init_tokens() {
  local label
  [[ -f $KEYFLEET_PKCS11_LIBRARY ]] || die "no PKCS#11 library at $KEYFLEET_PKCS11_LIBRARY (apt-get install softhsm2, or set KEYFLEET_PKCS11_LIBRARY)"
  mkdir -p "$hsm_dir/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
    "$hsm_dir/tokens" >"$hsm_dir/softhsm2.conf"
  for label in Org1 Org2 Orderer; do
    (umask 077 && openssl rand -hex 16 >"$hsm_dir/$label.pin")
    # The SO PIN is thrown away: nobody re-initialises a network's token, `down` removes it.
    SOFTHSM2_CONF=$hsm_dir/softhsm2.conf softhsm2-util --init-token --free --label "$label" \
      --so-pin "$(openssl rand -hex 16)" --pin "$(hsm_pin "$label")" >/dev/null ||
      die "cannot initialise the SoftHSM token $label in $hsm_dir"
  done
}

# Environment (NAME=VALUE lines) that puts a Fabric node's BCCSP on the token; PREFIX is
# CORE_PEER or ORDERER_GENERAL. The PIN is handed over separately (start_process's pin_var).
bccsp_env() {
  local prefix=$1 label=$2
  is_hsm || return 0
  printf '%s\n' "SOFTHSM2_CONF=$hsm_dir/softhsm2.conf" "${prefix}_BCCSP_DEFAULT=PKCS11" \
    "${prefix}_BCCSP_PKCS11_LIBRARY=$KEYFLEET_PKCS11_LIBRARY" "${prefix}_BCCSP_PKCS11_LABEL=$label" \
    "${prefix}_BCCSP_PKCS11_HASH=SHA2" "${prefix}_BCCSP_PKCS11_SECURITY=256"
}

# Fabric 3.1.5 prints its whole configuration, the PKCS#11 PIN included, at start: the peer from
# logger nodeCmd, the orderer from orderer.common.server, both at INFO. On an --hsm network that
# logger is held at WARNING so no PIN reaches a log (Fabric CA: --loglevel warning, same reason).
logging_spec() {
  if is_hsm; then echo "$KEYFLEET_FABRIC_LOGGING:$1=warning"; else echo "$KEYFLEET_FABRIC_LOGGING"; fi
}

# Fabric CA reads its BCCSP only from its configuration file (its environment variables cannot
# set the PKCS11 section), so the file holds the PIN: mode 600, inside the network's directory.
bccsp_yaml() {
  cat <<EOF
bccsp:
  default: PKCS11
  pkcs11:
    library: $KEYFLEET_PKCS11_LIBRARY
    label: $1
    pin: "$(hsm_pin "$1")"
    hash: SHA2
    security: 256
EOF
}

# A fabric-ca-client home whose keys are made in the token (the registrar of that CA, and the
# home from which it enrols the nodes).
hsm_client_home() {
  local unit=$1 home
  home=$dir/ca/$(ca_unit_dir "$unit")/hsm-client
  if [[ ! -f $home/fabric-ca-client-config.yaml ]]; then
    mkdir -p "$home"
    (umask 077 && bccsp_yaml "$(token_of "$unit")" >"$home/fabric-ca-client-config.yaml")
  fi
  echo "$home"
}

ca_unit_dir() { if [[ $1 == orderer ]]; then echo orderer; else echo "org$1"; fi; }
ca_tls_root() { if [[ $1 == orderer ]]; then orderer_tls_ca; else org_tls_ca "$1"; fi; }
unit_domain() { if [[ $1 == orderer ]]; then echo "$ORDERER_DOMAIN"; else org_domain "$1"; fi; }
unit_dir() { if [[ $1 == orderer ]]; then echo "$crypto/ordererOrganizations/$ORDERER_DOMAIN"; else org_dir "$1"; fi; }

# TLS material in cryptogen's layout, made with openssl: Fabric reads TLS keys only from files
# (peer.tls.key.file, General.TLS.PrivateKey), so these are the network's only node key files.
write_tls_ca() {
  local out=$1/tlsca domain=$2
  mkdir -p "$out" "$1/msp/tlscacerts"
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/priv_sk" 2>/dev/null)
  openssl req -x509 -new -key "$out/priv_sk" -subj "/O=$domain/CN=tlsca.$domain" -days 3650 \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$out/tlsca.$domain-cert.pem" 2>/dev/null
  cp "$out/tlsca.$domain-cert.pem" "$1/msp/tlscacerts/"
}

write_tls_node() {
  local node=$1 host=$2 domain=$3 tlsca=$4 unit=$5 out=$1/tls
  mkdir -p "$out"
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/server.key" 2>/dev/null)
  openssl req -new -key "$out/server.key" -subj "/O=$domain/CN=$host" -out "$out/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$host" "$(san_ip "$unit")" >"$out/ext.cnf"
  openssl x509 -req -in "$out/server.csr" -CA "$tlsca/tlsca.$domain-cert.pem" -CAkey "$tlsca/priv_sk" \
    -CAcreateserial -days 3650 -extfile "$out/ext.cnf" -out "$out/server.crt" 2>/dev/null
  cp "$tlsca/tlsca.$domain-cert.pem" "$out/ca.crt"
  rm -f "$out/server.csr" "$out/ext.cnf"
}

write_tls_material() {
  local profile=$1 org j i
  write_tls_ca "$(unit_dir orderer)" "$ORDERER_DOMAIN"
  for ((i = 0; i < $(orderer_count "$profile"); i++)); do
    write_tls_node "$(orderer_dir "$i")" "orderer$i.$ORDERER_DOMAIN" "$ORDERER_DOMAIN" "$(unit_dir orderer)/tlsca" orderer
  done
  for org in 1 2; do
    write_tls_ca "$(org_dir "$org")" "$(org_domain "$org")"
    for ((j = 0; j < $(peers_per_org "$profile"); j++)); do
      write_tls_node "$(peer_dir "$org" "$j")" "peer$j.$(org_domain "$org")" "$(org_domain "$org")" "$(org_dir "$org")/tlsca" "org$org"
    done
  done
}

# An MSP folder as the CA's enrolment left it, made a Fabric MSP: the CA's certificate under the
# name the NodeOU configuration gives it, and that configuration (client, peer, admin, orderer).
finish_msp() {
  local msp=$1 unit=$2 name=$3 cacert
  cacert=ca.$(unit_domain "$unit")-cert.pem
  rm -rf "$msp/cacerts" "$msp/IssuerPublicKey" "$msp/IssuerRevocationPublicKey" "$msp/user"
  mkdir -p "$msp/cacerts" "$msp/keystore"
  cp "$dir/ca/$(ca_unit_dir "$unit")/ca-cert.pem" "$msp/cacerts/$cacert"
  [[ -f $msp/signcerts/cert.pem && -n $name ]] && mv "$msp/signcerts/cert.pem" "$msp/signcerts/$name-cert.pem"
  {
    echo "NodeOUs:"
    echo "  Enable: true"
    for ou in Client Peer Admin Orderer; do
      echo "  ${ou}OUIdentifier: {Certificate: cacerts/$cacert, OrganizationalUnitIdentifier: ${ou,,}}"
    done
  } >"$msp/config.yaml"
}

# Registers NAME of TYPE at the unit's CA and enrols it into MSP with a key made in the token.
enrol_in_token() {
  local unit=$1 name=$2 type=$3 msp=$4 home secret
  home=$(hsm_client_home "$unit")
  secret=$(openssl rand -hex 16)
  hsm_ca_client "$unit" "$home" register --id.name "$name" --id.secret "$secret" --id.type "$type" ||
    die "cannot register $name at ca.$(ca_unit_dir "$unit"); see $logs/ca-client.log"
  FABRIC_CA_CLIENT_HOME=$home SOFTHSM2_CONF=$hsm_dir/softhsm2.conf fabric-ca-client enroll -M "$msp" \
    --tls.certfiles "$(ca_tls_root "$unit")" -u "https://$name:$secret@$(at "$(ca_port "$unit")")" \
    --caname "ca-$(ca_unit_dir "$unit")" --csr.hosts "$name,localhost,127.0.0.1$(san_list "$(ca_unit_dir "$unit")" | tr -d ' ')" >>"$logs/ca-client.log" 2>&1 ||
    die "cannot enrol $name at ca.$(ca_unit_dir "$unit"); see $logs/ca-client.log"
  finish_msp "$msp" "$unit" "$name"
}

hsm_ca_client() {
  local unit=$1 home=$2
  shift 2
  FABRIC_CA_CLIENT_HOME=$home SOFTHSM2_CONF=$hsm_dir/softhsm2.conf fabric-ca-client "$@" \
    --tls.certfiles "$(ca_tls_root "$unit")" -u "https://$(at "$(ca_port "$unit")")" \
    --caname "ca-$(ca_unit_dir "$unit")" >>"$logs/ca-client.log" 2>&1
}

# Every node identity of an --hsm network, from the CAs whose own keys are in the tokens: the
# organisation MSPs name those CAs, each orderer, peer and admin enrols with a key made in its
# organisation's token, and no key file is written (the keystore folders stay empty). The three
# organisations have their own CA and token, so they enrol side by side.
enrol_nodes() {
  local profile=$1 unit i enrolments=()
  for unit in orderer 1 2; do
    enrol_unit "$profile" "$unit" &
    enrolments+=($!)
  done
  for i in "${!enrolments[@]}"; do wait "${enrolments[$i]}" || die "the node identities were not all enrolled"; done
}

enrol_unit() {
  local profile=$1 unit=$2 home i j domain
  home=$(hsm_client_home "$unit")
  FABRIC_CA_CLIENT_HOME=$home SOFTHSM2_CONF=$hsm_dir/softhsm2.conf fabric-ca-client enroll \
    --tls.certfiles "$(ca_tls_root "$unit")" --caname "ca-$(ca_unit_dir "$unit")" \
    -u "https://admin:$(ca_admin_secret "$unit")@$(at "$(ca_port "$unit")")" >>"$logs/ca-client.log" 2>&1 ||
    die "cannot enrol the registrar of ca.$(ca_unit_dir "$unit"); see $logs/ca-client.log"
  finish_msp "$(unit_dir "$unit")/msp" "$unit" ""
  if [[ $unit == orderer ]]; then
    for ((i = 0; i < $(orderer_count "$profile"); i++)); do
      enrol_in_token orderer "orderer$i.$ORDERER_DOMAIN" orderer "$(orderer_dir "$i")/msp"
    done
    return
  fi
  domain=$(org_domain "$unit")
  for ((j = 0; j < $(peers_per_org "$profile"); j++)); do
    enrol_in_token "$unit" "peer$j.$domain" peer "$(peer_dir "$unit" "$j")/msp"
  done
  enrol_in_token "$unit" "Admin@$domain" admin "$(org_dir "$unit")/users/Admin@$domain/msp"
}

# --- crypto material --------------------------------------------------------------------------
write_crypto_config() {
  local profile=$1 n i
  n=$(orderer_count "$profile")
  {
    echo "OrdererOrgs:"
    echo "  - Name: Orderer"
    echo "    Domain: $ORDERER_DOMAIN"
    echo "    EnableNodeOUs: true"
    echo "    Specs:"
    for ((i = 0; i < n; i++)); do
      echo "      - Hostname: orderer$i"
      echo "        SANS: [localhost, 127.0.0.1$(san_list orderer)]"
    done
    echo "PeerOrgs:"
    for i in 1 2; do
      echo "  - Name: Org$i"
      echo "    Domain: $(org_domain "$i")"
      echo "    EnableNodeOUs: true"
      echo "    Template:"
      echo "      Count: $(peers_per_org "$profile")"
      echo "      SANS: [localhost, 127.0.0.1$(san_list "org$i")]"
      echo "    CA:"
      echo "      Hostname: ca"
      echo "      SANS: [localhost, 127.0.0.1$(san_list "org$i")]"
      echo "    Users:"
      echo "      Count: 0"
    done
  } >"$dir/crypto-config.yaml"
  cryptogen generate --config="$dir/crypto-config.yaml" --output="$crypto" >/dev/null
}

org_dir() { echo "$crypto/peerOrganizations/$(org_domain "$1")"; }
orderer_dir() { echo "$crypto/ordererOrganizations/$ORDERER_DOMAIN/orderers/orderer$1.$ORDERER_DOMAIN"; }
peer_dir() { echo "$(org_dir "$1")/peers/peer$2.$(org_domain "$1")"; }
orderer_tls_ca() { echo "$crypto/ordererOrganizations/$ORDERER_DOMAIN/tlsca/tlsca.$ORDERER_DOMAIN-cert.pem"; }
org_tls_ca() { echo "$(org_dir "$1")/tlsca/tlsca.$(org_domain "$1")-cert.pem"; }

# A TLS CA and server certificate for the chaincode servers (the peers dial them with TLS).
write_chaincode_tls() {
  local out=$dir/chaincode/tls
  mkdir -p "$out"
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$out/ca.key" -subj "/O=keyfleet/CN=keyfleet chaincode TLS CA" -days 3650 \
    -out "$out/ca.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/server.key" 2>/dev/null
  openssl req -new -key "$out/server.key" -subj "/O=keyfleet/CN=localhost" -out "$out/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$out/ext.cnf"
  openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -days 3650 \
    -extfile "$out/ext.cnf" -out "$out/server.crt" 2>/dev/null
  chmod 600 "$out"/*.key
}

# --- channel configuration ----------------------------------------------------------------------
write_configtx() {
  local profile=$1 n i cons c
  n=$(orderer_count "$profile")
  cons=$(consensus "$profile")
  {
    cat <<EOF
Organizations:
  - &OrdererOrg
    Name: OrdererMSP
    ID: OrdererMSP
    MSPDir: $crypto/ordererOrganizations/$ORDERER_DOMAIN/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
    OrdererEndpoints:
EOF
    for ((i = 0; i < n; i++)); do echo "      - $(at "$(orderer_port "$i")")"; done
    for i in 1 2; do
      cat <<EOF
  - &Org$i
    Name: Org${i}MSP
    ID: Org${i}MSP
    MSPDir: $(org_dir "$i")/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org${i}MSP.admin', 'Org${i}MSP.peer', 'Org${i}MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org${i}MSP.admin', 'Org${i}MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org${i}MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org${i}MSP.peer')"}
    AnchorPeers:
      - {Host: $(unit_addr "org$i"), Port: $(peer_port "$i" 0)}
EOF
    done
    cat <<EOF
Capabilities:
  Channel: &ChannelCapabilities {V3_0: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {V2_5: true}
Channel:
  Policies: &MetaPolicies
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
Profiles:
  KeyfleetChannel:
    Policies: *MetaPolicies
    Capabilities: *ChannelCapabilities
    Orderer:
      OrdererType: $cons
      BatchTimeout: $KEYFLEET_BATCH_TIMEOUT
      BatchSize: {MaxMessageCount: 500, AbsoluteMaxBytes: 10 MB, PreferredMaxBytes: 2 MB}
      Organizations: [*OrdererOrg]
      Policies:
        <<: *MetaPolicies
        BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
      Capabilities: *OrdererCapabilities
EOF
    if [[ $cons == etcdraft ]]; then
      echo "      EtcdRaft:"
      echo "        Options: {TickInterval: 100ms, ElectionTick: 10, HeartbeatTick: 1, MaxInflightBlocks: 5, SnapshotIntervalSize: 16 MB}"
      echo "        Consenters:"
      for ((i = 0; i < n; i++)); do
        echo "          - {Host: $(unit_addr orderer), Port: $(orderer_port "$i"), ClientTLSCert: $(orderer_dir "$i")/tls/server.crt, ServerTLSCert: $(orderer_dir "$i")/tls/server.crt}"
      done
    else
      cat <<EOF
      SmartBFT:
        RequestBatchMaxInterval: $KEYFLEET_BATCH_TIMEOUT
        RequestForwardTimeout: 2s
        RequestComplainTimeout: 20s
        RequestAutoRemoveTimeout: 3m
        ViewChangeResendInterval: 5s
        ViewChangeTimeout: 20s
        LeaderHeartbeatTimeout: 1m
        LeaderHeartbeatCount: 10
        CollectTimeout: 1s
        RequestPoolSize: 100000
        IncomingMessageBufferSize: 200
      ConsenterMapping:
EOF
      for ((i = 0; i < n; i++)); do
        echo "        - {ID: $((i + 1)), Host: $(unit_addr orderer), Port: $(orderer_port "$i"), MSPID: OrdererMSP, Identity: $(orderer_dir "$i")/msp/signcerts/orderer$i.$ORDERER_DOMAIN-cert.pem, ClientTLSCert: $(orderer_dir "$i")/tls/server.crt, ServerTLSCert: $(orderer_dir "$i")/tls/server.crt}"
      done
    fi
    cat <<EOF
    Application:
      Organizations: [*Org1, *Org2]
      Policies:
        <<: *MetaPolicies
        LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
        Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
      Capabilities: *ApplicationCapabilities
EOF
  } >"$dir/configtx.yaml"
  # Every channel has the same configuration; only its name (and so its genesis block) differs.
  mkdir -p "$dir/channels"
  for c in $(channels); do
    FABRIC_CFG_PATH=$dir configtxgen -profile KeyfleetChannel -channelID "$c" \
      -outputBlock "$(channel_block "$c")" >/dev/null 2>"$logs/configtxgen.log" ||
      die "configtxgen failed for $c; see $logs/configtxgen.log"
  done
}

# --- nodes ----------------------------------------------------------------------------------------
start_ca() {
  local org=$1 port home
  port=$(ca_port "$org")
  home=$dir/ca/$(ca_unit_dir "$org")
  mkdir -p "$home"
  alive "ca.$(ca_unit_dir "$org")" && return 0
  if is_hsm; then
    start_hsm_ca "$org" "$home" "$port"
    return
  fi
  if [[ ! -f $home/ca-cert.pem ]]; then
    # The CA runs on the organisation's CA key that cryptogen made, so what it issues is a valid
    # identity of that MSP; its TLS certificate is issued by the organisation's TLS CA.
    cp "$(org_dir "$org")/ca/ca.$(org_domain "$org")-cert.pem" "$home/ca-cert.pem"
    cp "$(org_dir "$org")"/ca/priv_sk "$home/ca-key.pem"
    chmod 600 "$home/ca-key.pem"
    issue_ca_tls "$org" "$home"
  fi
  start_process "ca.org$org" "$home" fabric-ca-server start \
    -b "admin:$(ca_admin_secret "$org")" --home "$home" --port "$port" --address "$(unit_addr "org$org")" \
    --ca.name "ca-org$org" --ca.certfile ca-cert.pem --ca.keyfile ca-key.pem \
    --tls.enabled --tls.certfile tls-cert.pem --tls.keyfile tls-key.pem \
    --operations.listenaddress "$(at $((port + 1)))" --metrics.provider prometheus \
    --csr.hosts "localhost,127.0.0.1$(san_list "org$org" | tr -d ' ')" --cfg.identities.allowremove
}

# On an --hsm network the CA makes its own root key in its organisation's token at its first
# start (ca-cert.pem is its self-signed certificate; the organisation's MSP names it) and finds
# it there by the certificate's public key afterwards. Its configuration file carries the BCCSP
# and the bootstrap registrar, which `-b` cannot add once a configuration file exists.
start_hsm_ca() {
  local unit=$1 home=$2 port=$3 name
  name=$(ca_unit_dir "$unit")
  if [[ ! -f $home/fabric-ca-server-config.yaml ]]; then
    issue_ca_tls "$unit" "$home"
    (
      umask 077
      cat <<EOF >"$home/fabric-ca-server-config.yaml"
registry:
  maxenrollments: -1
  identities:
    - name: admin
      pass: "$(ca_admin_secret "$unit")"
      type: client
      affiliation: ""
      attrs: {hf.Registrar.Roles: "*", hf.Registrar.DelegateRoles: "*", hf.Registrar.Attributes: "*", hf.Revoker: true, hf.GenCRL: true, hf.AffiliationMgr: true, hf.IntermediateCA: true}
csr:
  cn: ca.$(unit_domain "$unit")
  names: [{O: $(unit_domain "$unit")}]
  hosts: [localhost, 127.0.0.1$(san_list "$name")]
$(bccsp_yaml "$(token_of "$unit")")
EOF
    )
  fi
  start_process "ca.$name" "$home" env SOFTHSM2_CONF="$hsm_dir/softhsm2.conf" fabric-ca-server start \
    --home "$home" --port "$port" --address "$(unit_addr "$name")" --ca.name "ca-$name" --loglevel warning \
    --tls.enabled --tls.certfile tls-cert.pem --tls.keyfile tls-key.pem \
    --operations.listenaddress "$(at $((port + 1)))" --metrics.provider prometheus \
    --cfg.identities.allowremove
}

# The org's TLS CA signs the CA server's TLS certificate: one TLS root per org.
issue_ca_tls() {
  local unit=$1 home=$2 tlsca domain
  domain=$(unit_domain "$unit")
  tlsca=$(unit_dir "$unit")/tlsca
  mkdir -p "$home"
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$home/tls-key.pem" 2>/dev/null)
  openssl req -new -key "$home/tls-key.pem" -subj "/O=$domain/CN=ca.$domain" -out "$home/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1%s\nextendedKeyUsage=serverAuth\n' "$(san_ip "$(ca_unit_dir "$unit")")" >"$home/tls-ext.cnf"
  openssl x509 -req -in "$home/tls.csr" -CA "$tlsca/tlsca.$domain-cert.pem" -CAkey "$tlsca/priv_sk" \
    -CAcreateserial -days 3650 -extfile "$home/tls-ext.cnf" -out "$home/tls-cert.pem" 2>/dev/null
}

ca_admin_secret() {
  local file
  file=$dir/ca/$(ca_unit_dir "$1")/admin-secret
  mkdir -p "${file%/*}"
  [[ -f $file ]] || (umask 077 && openssl rand -hex 16 >"$file")
  cat "$file"
}

start_orderer() {
  local i=$1 port node hsm_env pin_var='' pin_token=Orderer
  port=$(orderer_port "$i")
  node=$(orderer_dir "$i")
  mkdir -p "$dir/nodes/orderer$i"
  mapfile -t hsm_env < <(bccsp_env ORDERER_GENERAL Orderer)
  is_hsm && pin_var=ORDERER_GENERAL_BCCSP_PKCS11_PIN
  start_process "orderer$i" "$dir/nodes/orderer$i" env "${hsm_env[@]}" \
    FABRIC_CFG_PATH="$FABRIC_CONFIG_DIR" \
    FABRIC_LOGGING_SPEC="$(logging_spec orderer.common.server)" \
    ORDERER_GENERAL_LISTENADDRESS="$(unit_addr orderer)" \
    ORDERER_GENERAL_LISTENPORT="$port" \
    ORDERER_GENERAL_LOCALMSPID=OrdererMSP \
    ORDERER_GENERAL_LOCALMSPDIR="$node/msp" \
    ORDERER_GENERAL_BOOTSTRAPMETHOD=none \
    ORDERER_GENERAL_TLS_ENABLED=true \
    ORDERER_GENERAL_TLS_PRIVATEKEY="$node/tls/server.key" \
    ORDERER_GENERAL_TLS_CERTIFICATE="$node/tls/server.crt" \
    ORDERER_GENERAL_TLS_ROOTCAS="[$node/tls/ca.crt]" \
    ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="$node/tls/server.crt" \
    ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="$node/tls/server.key" \
    ORDERER_GENERAL_CLUSTER_ROOTCAS="[$node/tls/ca.crt]" \
    ORDERER_CHANNELPARTICIPATION_ENABLED=true \
    ORDERER_ADMIN_LISTENADDRESS="$(at $((port + 1)))" \
    ORDERER_ADMIN_TLS_ENABLED=true \
    ORDERER_ADMIN_TLS_PRIVATEKEY="$node/tls/server.key" \
    ORDERER_ADMIN_TLS_CERTIFICATE="$node/tls/server.crt" \
    ORDERER_ADMIN_TLS_ROOTCAS="[$node/tls/ca.crt]" \
    ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true \
    ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$node/tls/ca.crt]" \
    ORDERER_OPERATIONS_LISTENADDRESS="$(at $((port + 2)))" \
    ORDERER_METRICS_PROVIDER=prometheus \
    ORDERER_FILELEDGER_LOCATION="$dir/nodes/orderer$i/ledger" \
    ORDERER_CONSENSUS_WALDIR="$dir/nodes/orderer$i/etcdraft/wal" \
    ORDERER_CONSENSUS_SNAPDIR="$dir/nodes/orderer$i/etcdraft/snapshot" \
    orderer
}

start_peer() {
  local org=$1 j=$2 port node name domain builders hsm_env pin_var='' pin_token
  pin_token=$(token_of "$org")
  mapfile -t hsm_env < <(bccsp_env CORE_PEER "$pin_token")
  is_hsm && pin_var=CORE_PEER_BCCSP_PKCS11_PIN
  port=$(peer_port "$org" "$j")
  node=$(peer_dir "$org" "$j")
  domain=$(org_domain "$org")
  name=peer$j.org$org
  builders="[{name: ccaas_builder, path: $FABRIC_CCAAS_BUILDER, propagateEnvironment: [CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG]}, {name: keyfleet_node, path: $repo_root/network/builders/node, propagateEnvironment: [PATH, HOME, npm_config_cache]}]"
  mkdir -p "$dir/nodes/$name"
  start_process "$name" "$dir/nodes/$name" env "${hsm_env[@]}" \
    FABRIC_CFG_PATH="$FABRIC_CONFIG_DIR" \
    FABRIC_LOGGING_SPEC="$(logging_spec nodeCmd)" \
    CORE_PEER_ID="peer$j.$domain" \
    CORE_PEER_ADDRESS="$(at "$port")" \
    CORE_PEER_LISTENADDRESS="$(at "$port")" \
    CORE_PEER_CHAINCODEADDRESS="127.0.0.1:$((port + 1))" \
    CORE_PEER_CHAINCODELISTENADDRESS="127.0.0.1:$((port + 1))" \
    CORE_PEER_GOSSIP_BOOTSTRAP="$(at "$(peer_port "$org" 0)")" \
    CORE_PEER_GOSSIP_EXTERNALENDPOINT="$(at "$port")" \
    CORE_PEER_GOSSIP_RECONNECTINTERVAL=2s \
    CORE_PEER_LOCALMSPID="Org${org}MSP" \
    CORE_PEER_MSPCONFIGPATH="$node/msp" \
    CORE_PEER_TLS_ENABLED=true \
    CORE_PEER_TLS_CERT_FILE="$node/tls/server.crt" \
    CORE_PEER_TLS_KEY_FILE="$node/tls/server.key" \
    CORE_PEER_TLS_ROOTCERT_FILE="$node/tls/ca.crt" \
    CORE_PEER_FILESYSTEMPATH="$dir/nodes/$name/data" \
    CORE_PEER_LIMITS_CONCURRENCY_GATEWAYSERVICE=2500 \
    CORE_LEDGER_SNAPSHOTS_ROOTDIR="$dir/nodes/$name/snapshots" \
    CORE_OPERATIONS_LISTENADDRESS="$(at $((port + 2)))" \
    CORE_METRICS_PROVIDER=prometheus \
    CORE_VM_ENDPOINT= \
    CORE_CHAINCODE_EXTERNALBUILDERS="$builders" \
    CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG="{\"ccport\":\"$(cc_port "$org")\"}" \
    peer node start
}

# Environment for Fabric's peer CLI as IDENTITY of ORG (the same as `env` prints).
peer_cli_env() {
  local org=$1 identity=${2:-admin} msp
  if [[ $identity == admin ]]; then
    msp=$(org_dir "$org")/users/Admin@$(org_domain "$org")/msp
  else
    msp=$dir/identities/org$org/$identity/msp
  fi
  [[ -d $msp ]] || die "no identity $identity in Org$org (known: admin $(org_roles "$org"))"
  cat <<EOF
export PATH='$FABRIC_BIN_DIR':"\$PATH"
export FABRIC_CFG_PATH='$FABRIC_CONFIG_DIR'
export FABRIC_LOGGING_SPEC='grpc=warning:warning'
export CORE_PEER_TLS_ENABLED=true
export CORE_PEER_LOCALMSPID='Org${org}MSP'
export CORE_PEER_MSPCONFIGPATH='$msp'
export CORE_PEER_ADDRESS='$(at "$(peer_port "$org" 0)")'
export CORE_PEER_TLS_ROOTCERT_FILE='$(org_tls_ca "$org")'
export ORDERER_ADDRESS='$(at "$(orderer_port 0)")'
export ORDERER_CA='$(orderer_tls_ca)'
export KEYFLEET_CHANNEL='$ch'
export KEYFLEET_CHAINCODE='$CHAINCODE'
EOF
  # An admin of an --hsm network signs in its organisation's token. The exports read the PIN
  # from its file when they are evaluated: the PIN is never printed.
  if [[ $identity == admin ]] && is_hsm; then
    bccsp_env CORE_PEER "$(token_of "$org")" | sed "s/^\([A-Z0-9_]*\)=\(.*\)$/export \1='\2'/"
    # shellcheck disable=SC2016 # the $(cat …) is for the shell that evaluates the exports
    printf 'export CORE_PEER_BCCSP_PKCS11_PIN="$(cat %q)"\n' "$hsm_dir/$(token_of "$org").pin"
  else
    echo "export CORE_PEER_BCCSP_DEFAULT=SW"
  fi
}

as_peer() {
  local org=$1 j=$2 identity=${3:-admin}
  shift 3
  (
    eval "$(peer_cli_env "$org" "$identity")"
    CORE_PEER_ADDRESS="$(at "$(peer_port "$org" "$j")")"
    export CORE_PEER_ADDRESS
    "$@"
  )
}

# --- identities from the Fabric CAs -----------------------------------------------------------
# keyfleet's role identities, registered with a `role` attribute that goes into the enrolment
# certificate (Fabric CA attribute extension), which the chaincode reads.
org_roles() { case $1 in 1) echo "operator application" ;; 2) echo "verifier auditor application" ;; esac }

ca_client() {
  local org=$1 home=$2
  shift 2
  FABRIC_CA_CLIENT_HOME=$home SOFTHSM2_CONF=$hsm_dir/softhsm2.conf fabric-ca-client "$@" --tls.certfiles "$(org_tls_ca "$org")" \
    -u "https://$(at "$(ca_port "$org")")" --caname "ca-org$org" >>"$logs/ca-client.log" 2>&1
}

enrol_identities() {
  local org=$1 registrar role home secret service
  registrar=$dir/ca/org$org/registrar
  # On an --hsm network the registrar was enrolled with the nodes, its key in the token.
  if is_hsm; then registrar=$(hsm_client_home "$org"); fi
  [[ -d $registrar/msp ]] ||
    FABRIC_CA_CLIENT_HOME=$registrar fabric-ca-client enroll --tls.certfiles "$(org_tls_ca "$org")" \
      -u "https://admin:$(ca_admin_secret "$org")@$(at "$(ca_port "$org")")" --caname "ca-org$org" \
      >>"$logs/ca-client.log" 2>&1 || die "cannot enrol the registrar of ca.org$org; see $logs/ca-client.log"
  for role in $(org_roles "$org"); do
    home=$dir/identities/org$org/$role
    [[ -f $home/msp/signcerts/cert.pem ]] && continue
    mkdir -p "$home"
    secret=$(openssl rand -hex 16)
    ca_client "$org" "$registrar" register --id.name "$role" --id.secret "$secret" --id.type client \
      --id.attrs "role=$role:ecert" || die "cannot register $role at ca.org$org; see $logs/ca-client.log"
    FABRIC_CA_CLIENT_HOME=$home fabric-ca-client enroll --tls.certfiles "$(org_tls_ca "$org")" \
      -u "https://$role:$secret@$(at "$(ca_port "$org")")" --caname "ca-org$org" --enrollment.attrs role \
      -M "$home/msp" >>"$logs/ca-client.log" 2>&1 || die "cannot enrol $role at ca.org$org; see $logs/ca-client.log"
    # The MSP's NodeOU configuration names the CA certificate by file; use the org's own.
    rm -f "$home"/msp/cacerts/*
    cp "$(org_dir "$org")/msp/cacerts/"* "$home/msp/cacerts/"
    cp "$(org_dir "$org")/msp/config.yaml" "$home/msp/config.yaml"
    chmod 600 "$home"/msp/keystore/*
  done
  # Registered, not enrolled: the HSM-held service identities enrol themselves with a CSR signed
  # in their own token (the operator gateway in Org1, the verifier service in Org2).
  service=$([[ $org == 1 ]] && echo "keyfleet-gateway operator" || echo "keyfleet-verifier verifier")
  read -r name role <<<"$service"
  if [[ ! -f $dir/identities/org$org/$name.secret ]]; then
    secret=$(openssl rand -hex 16)
    ca_client "$org" "$registrar" register --id.name "$name" --id.secret "$secret" --id.type client \
      --id.attrs "role=$role:ecert" --id.maxenrollments -1 ||
      die "cannot register $name at ca.org$org; see $logs/ca-client.log"
    (umask 077 && echo "$secret" >"$dir/identities/org$org/$name.secret")
  fi
}

# --- connection description ------------------------------------------------------------------------
write_connection() {
  local profile=$1 org j n role first
  n=$(peers_per_org "$profile")
  {
    printf '{\n  "profile": "%s",\n  "channel": "%s",\n  "chaincode": "%s",\n' "$profile" "$CHANNEL" "$CHAINCODE"
    # The shard channels in shard order (the first is "channel"), and the governance channel.
    printf '  "channels": {"shards": %s, "governance": %s},\n' \
      "$(channels | grep -vxF "$GOVERNANCE_CHANNEL" | jq -R . | jq -sc .)" \
      "$(if [[ -f $dir/shards ]]; then jq -R . <<<"$GOVERNANCE_CHANNEL"; else echo null; fi)"
    printf '  "orderers": [%s],\n' "$(for ((j = 0; j < $(orderer_count "$profile"); j++)); do
      ((j > 0)) && printf ', '
      printf '{"name": "orderer%d", "endpoint": "%s", "hostAlias": "localhost", "operations": "%s"}' \
        "$j" "$(at "$(orderer_port "$j")")" "$(at $(($(orderer_port "$j") + 2)))"
    done)"
    printf '  "ordererTlsRootCert": "%s",\n' "${crypto#"$dir"/}/ordererOrganizations/$ORDERER_DOMAIN/tlsca/tlsca.$ORDERER_DOMAIN-cert.pem"
    printf '  "organizations": {\n'
    for org in 1 2; do
      printf '    "Org%d": {\n      "mspId": "Org%dMSP",\n      "peers": [' "$org" "$org"
      for ((j = 0; j < n; j++)); do
        ((j > 0)) && printf ', '
        printf '{"name": "peer%d.org%d", "endpoint": "%s", "hostAlias": "localhost", "tlsRootCert": "%s", "operations": "%s"}' \
          "$j" "$org" "$(at "$(peer_port "$org" "$j")")" "${crypto#"$dir"/}/peerOrganizations/$(org_domain "$org")/tlsca/tlsca.$(org_domain "$org")-cert.pem" \
          "$(at $(($(peer_port "$org" "$j") + 2)))"
      done
      printf '],\n      "ca": {"url": "https://%s", "caName": "ca-org%d", "tlsRootCert": "%s", "caCert": "%s"},\n' \
        "$(at "$(ca_port "$org")")" "$org" "${crypto#"$dir"/}/peerOrganizations/$(org_domain "$org")/tlsca/tlsca.$(org_domain "$org")-cert.pem" \
        "ca/org$org/ca-cert.pem"
      printf '      "identities": {'
      first=true
      for role in $(org_roles "$org"); do
        $first || printf ','
        first=false
        printf '\n        "%s": {"certificate": "identities/org%d/%s/msp/signcerts/cert.pem", "privateKeyDir": "identities/org%d/%s/msp/keystore"}' \
          "$role" "$org" "$role" "$org" "$role"
      done
      printf '\n      },\n'
      if [[ $org == 1 ]]; then
        printf '      "enrolments": {"keyfleet-gateway": {"role": "operator", "secretFile": "identities/org1/keyfleet-gateway.secret"}}\n'
      else
        printf '      "enrolments": {"keyfleet-verifier": {"role": "verifier", "secretFile": "identities/org2/keyfleet-verifier.secret"}}\n'
      fi
      [[ $org == 1 ]] && printf '    },\n' || printf '    }\n'
    done
    printf '  }\n}\n'
  } >"$dir/connection.json.tmp"
  jq . "$dir/connection.json.tmp" >"$dir/connection.json" || die "bad connection description (a bug in network.sh)"
  rm -f "$dir/connection.json.tmp"
}

# --- up -----------------------------------------------------------------------------------------
all_names() {
  local profile=$1 i j
  echo ca.org1 ca.org2
  is_hsm && echo ca.orderer
  for ((i = 0; i < $(orderer_count "$profile"); i++)); do echo "orderer$i"; done
  for i in 1 2; do for ((j = 0; j < $(peers_per_org "$profile"); j++)); do echo "peer$j.org$i"; done; done
  [[ -f $dir/chaincode/package-id ]] && echo cc.org1 cc.org2
  return 0
}

all_alive() {
  local name
  for name in $(all_names "$1"); do alive "$name" || return 1; done
}

raft_leader() {
  local i
  for ((i = 0; i < $1; i++)); do
    curl -fsS "http://$(at $(($(orderer_port "$i") + 2)))/metrics" 2>/dev/null |
      grep -q "^consensus_etcdraft_is_leader{channel=\"$ch\"} 1" && return 0
  done
  return 1
}

# SmartBFT has no leader gauge worth polling; a channel whose every consenter answers `active`
# on the participation API is ready for a first transaction (which clients retry briefly).
bft_active() {
  local i
  for ((i = 0; i < $1; i++)); do
    osnadmin channel list --channelID "$ch" -o "$(at $(($(orderer_port "$i") + 1)))" \
      --ca-file "$(orderer_tls_ca)" --client-cert "$(orderer_dir "$i")/tls/server.crt" \
      --client-key "$(orderer_dir "$i")/tls/server.key" 2>/dev/null | grep -q '"status": "active"' || return 1
  done
}

peer_joined() { as_peer "$1" "$2" admin peer channel getinfo -c "$ch" >/dev/null 2>&1; }

# Waits until every channel has a Raft leader, or every consenter is active on it (SmartBFT).
wait_channels_ordered() {
  local name=$1 n=$2 ch=$CHANNEL
  for ch in $(channels); do
    if [[ $(consensus "$(cat "$dir/profile")") == etcdraft ]]; then
      wait_for "$name" "a Raft leader for $ch" 30 raft_leader "$n"
    else
      wait_for "$name" "every consenter active on $ch" 30 bft_active "$n"
    fi
  done
}

cmd_up() {
  local started=$SECONDS existing i j org n unit c ch=$CHANNEL
  load_fabric
  if [[ -f $dir/profile ]]; then
    existing=$(cat "$dir/profile")
    [[ -z $profile || $profile == "$existing" ]] ||
      die "a $existing network already exists in $dir; run 'down' first to make a $profile one"
    profile=$existing
    if $hsm && ! is_hsm; then die "the $existing network in $dir was made without --hsm; run 'down' first to make an --hsm one"; fi
    if [[ -n $hosts_given ]] && ! cmp -s <(grep -v '^#' "$hosts_given") <(grep -v '^#' "$hosts_file" 2>/dev/null); then
      die "the $existing network in $dir was placed on other hosts; run 'down' first to place it on those of $hosts_given"
    fi
    if [[ -n $shards && ( ! -f $dir/shards || $shards != "$(shard_count)" ) ]]; then
      die "the $existing network in $dir has other channels ($(channels | paste -sd ' ')); run 'down' first to make one with --shards $shards"
    fi
    if [[ -f $dir/.ready ]] && all_alive "$profile"; then
      log "the $profile network in $dir is already up"
      return 0
    fi
  fi
  : "${profile:=dev}"
  [[ $profile =~ ^(dev|ha|bft)$ ]] || die "unknown profile $profile (dev, ha or bft)"
  [[ -z $shards || $shards =~ ^[1-8]$ ]] || die "--shards $shards: a number of shard channels from 1 to 8"
  n=$(orderer_count "$profile")

  # Whatever of ours is still running from a crashed or half-finished run goes first.
  local leftovers
  leftovers=$(stop_all)
  ((leftovers == 0)) || log "stopped $leftovers leftover process(es) of this network"
  for port in $(ca_port 1) $(ca_port 2) $(ca_port orderer) $(orderer_port 0) $(peer_port 1 0) $(peer_port 2 0); do
    port_listens "$port" && die "port $(at "$port") is taken by another program; choose another --port-base"
  done

  local fresh=false
  if [[ ! -f $dir/.ready ]]; then
    fresh=true
    rm -rf "$dir"
    mkdir -p "$dir" "$logs" "$pids"
    echo "$profile" >"$dir/profile"
    echo "$base" >"$dir/port-base"
    if [[ -n $shards ]]; then echo "$shards" >"$dir/shards"; fi
    if [[ -n $hosts_given ]]; then cp "$hosts_given" "$hosts_file"; fi
    if $hsm; then
      touch "$dir/hsm-mode"
      # The CAs come first: every node identity is enrolled from them, with a key made in a token.
      init_tokens
      write_tls_material "$profile"
      for unit in orderer 1 2; do start_ca "$unit"; done
      for unit in orderer 1 2; do
        wait_for "ca.$(ca_unit_dir "$unit")" "the CA's TLS endpoint" 30 ca_ready "$(ca_port "$unit")" "$(ca_tls_root "$unit")"
      done
      enrol_nodes "$profile"
    else
      write_crypto_config "$profile"
    fi
    write_chaincode_tls
    write_configtx "$profile"
  fi
  log "starting the $profile network in $dir (ports $base-$((base + 101))$(is_hsm && echo ', node keys in SoftHSM tokens')$([[ -f $hosts_file ]] && echo ", on hosts orderer ${host_addr[orderer]}, org1 ${host_addr[org1]}, org2 ${host_addr[org2]}"))"

  for org in 1 2; do start_ca "$org"; done
  if is_hsm; then start_ca orderer; fi
  for ((i = 0; i < n; i++)); do start_orderer "$i"; done
  for org in 1 2; do for ((j = 0; j < $(peers_per_org "$profile"); j++)); do start_peer "$org" "$j"; done; done

  for ((i = 0; i < n; i++)); do
    wait_for "orderer$i" "health and admin port" 30 eval "healthy $(($(orderer_port "$i") + 2)) && port_listens $(($(orderer_port "$i") + 1))"
  done
  if $fresh; then
    for c in $(channels); do
      for ((i = 0; i < n; i++)); do
        osnadmin channel join --channelID "$c" --config-block "$(channel_block "$c")" \
          -o "$(at $(($(orderer_port "$i") + 1)))" --ca-file "$(orderer_tls_ca)" \
          --client-cert "$(orderer_dir "$i")/tls/server.crt" --client-key "$(orderer_dir "$i")/tls/server.key" \
          >>"$logs/osnadmin.log" 2>&1 || die "orderer$i did not join $c; see $logs/osnadmin.log and $logs/orderer$i.log"
      done
    done
  fi
  wait_channels_ordered orderer0 "$n"

  for org in 1 2; do
    for ((j = 0; j < $(peers_per_org "$profile"); j++)); do
      # /healthz answers before the gRPC port listens: wait for both.
      wait_for "peer$j.org$org" "health and gRPC port" 30 \
        eval "healthy $(($(peer_port "$org" "$j") + 2)) && port_listens $(peer_port "$org" "$j")"
      for ch in $(channels); do
        if $fresh; then
          as_peer "$org" "$j" admin peer channel join -b "$(channel_block "$ch")" >>"$logs/peer-cli.log" 2>&1 ||
            die "peer$j.org$org did not join $ch; see $logs/peer-cli.log and $logs/peer$j.org$org.log"
        fi
        wait_for "peer$j.org$org" "channel $ch" 30 peer_joined "$org" "$j"
      done
    done
  done

  if is_hsm; then wait_for ca.orderer "the CA's TLS endpoint" 30 ca_ready "$(ca_port orderer)" "$(orderer_tls_ca)"; fi
  for org in 1 2; do
    wait_for "ca.org$org" "the CA's TLS endpoint" 30 ca_ready "$(ca_port "$org")" "$(org_tls_ca "$org")"
    enrol_identities "$org"
  done
  write_connection "$profile"

  [[ -f $dir/chaincode/package-id ]] && start_chaincode_servers
  touch "$dir/.ready"
  log "the $profile network is up in $((SECONDS - started)) s, channels $(channels | paste -sd " "); connection description: $dir/connection.json"
}

# --- deploy -------------------------------------------------------------------------------------
# The chaincode as a service: the package holds only connection.json (the address is a template
# each peer fills with its own org's chaincode server port). The code itself runs in one server
# per organisation; its digest goes into the package label, so changed code makes a new package
# and a new definition with the next sequence number.
code_digest() {
  local path=$1 dep
  {
    (cd "$path" && find dist package.json -type f \( -name '*.js' -o -name '*.json' \) ! -name '*.test.js' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum)
    for dep in $(workspace_deps "$path"); do
      (cd "$dep" && find dist package.json -type f \( -name '*.js' -o -name '*.json' \) ! -name '*.test.js' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum)
    done
  } | sha256sum | cut -c1-16
}

# The folders of the repository's own workspace packages (e.g. @keyfleet/protocol) that the
# chaincode in PATH depends on: npm links them into node_modules, no registry has them, so a
# package of the chaincode must carry them.
workspace_deps() {
  local path=$1 name target
  for name in $(jq -r '.dependencies // {} | keys[]' "$path/package.json"); do
    target=$(readlink -f "$repo_root/node_modules/$name") || continue
    if [[ $target == "$repo_root"/* && $target != "$repo_root"/node_modules/* && -f $target/package.json ]]; then
      echo "$target"
    fi
  done
}

make_package() {
  local label=$1 out=$2 work
  work=$(mktemp -d)
  jq -n --rawfile root "$dir/chaincode/tls/ca.crt" \
    '{address: "127.0.0.1:{{.ccport}}", dial_timeout: "10s", tls_required: true, client_auth_required: false, root_cert: $root}' \
    >"$work/connection.json"
  jq -n --arg name "$label" '{type: "ccaas", label: $name}' >"$work/metadata.json"
  # Same inputs, same bytes: a fixed time and owner make the package id reproducible.
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -czf "$work/code.tar.gz" connection.json
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -czf "$out" metadata.json code.tar.gz
  rm -rf "$work"
}

# The conventional Node package: what `peer lifecycle chaincode package --lang node` makes of a
# folder holding the chaincode's package.json and built JavaScript. The folder is self-contained:
# the root's npm overrides go into its package.json, tests and test helpers stay out, and the
# repository's own packages it depends on (@keyfleet/protocol) go in as npm tarballs.
make_node_package() {
  local path=$1 label=$2 out=$3 stage
  stage=$dir/chaincode/$label-src
  rm -rf "$stage"
  mkdir -p "$stage"
  jq --slurpfile root "$repo_root/package.json" '. + {overrides: ($root[0].overrides // {})} | del(.devDependencies)' \
    "$path/package.json" >"$stage/package.json"
  tar -C "$path" --exclude='*.test.*' --exclude='*.map' --exclude='*.d.ts' -cf - dist | tar -C "$stage" -xf -
  # Workspace dependencies travel inside the package as npm tarballs, installed from there.
  local dep name tarball
  for dep in $(workspace_deps "$path"); do
    name=$(jq -r .name "$dep/package.json")
    tarball=$(npm pack "$dep" --pack-destination "$stage" --json --loglevel=error | jq -r '.[0].filename')
    jq --arg name "$name" --arg file "file:$tarball" '.dependencies[$name] = $file' "$stage/package.json" \
      >"$stage/package.json.new"
    mv "$stage/package.json.new" "$stage/package.json"
  done
  as_peer 1 0 admin peer lifecycle chaincode package "$out" --lang node --path "$stage" --label "$label" \
    >>"$logs/peer-cli.log" 2>&1 || die "peer lifecycle chaincode package --lang node failed; see $logs/peer-cli.log"
}

start_chaincode_servers() {
  local org id path
  id=$(cat "$dir/chaincode/package-id")
  path=$(cat "$dir/chaincode/path")
  for org in 1 2; do
    alive "cc.org$org" && continue
    start_process "cc.org$org" "$dir/chaincode" env CORE_PEER_LOCALMSPID="Org${org}MSP" \
      node "$repo_root/node_modules/fabric-shim/cli.js" server --chaincode-address "127.0.0.1:$(cc_port "$org")" \
      --chaincode-id "$id" --module-path "$path" \
      --chaincode-tls-cert-file "$dir/chaincode/tls/server.crt" --chaincode-tls-key-file "$dir/chaincode/tls/server.key"
  done
  for org in 1 2; do
    wait_for "cc.org$org" "its port" 30 port_listens "$(cc_port "$org")"
  done
}

stop_chaincode_servers() {
  local org pid
  for org in 1 2; do
    if alive "cc.org$org"; then
      pid=$(cat "$pids/cc.org$org.pid")
      stop_pids "$pid"
    fi
    rm -f "$pids/cc.org$org.pid"
  done
}

committed() { as_peer 1 0 admin peer lifecycle chaincode querycommitted -C "$ch" -n "$cc_name" -O json 2>/dev/null; }

cmd_deploy() {
  local started=$SECONDS path label package id current org i j n profile_now pkgs ch=$CHANNEL pending=()
  load_fabric
  [[ -f $dir/.ready ]] || die "no network in $dir; run 'up' first"
  profile_now=$(cat "$dir/profile")
  all_alive "$profile_now" || die "the network in $dir is not running; run 'up' first"
  path=$(cd "${positional[0]:-$repo_root/chaincode}" && pwd)
  [[ -f $path/package.json && -d $path/dist ]] || die "$path has no package.json and dist/ (build it first: npx tsc -b)"
  case $cc_lang in
    ccaas) label="${CHAINCODE}_$(code_digest "$path")" ;;
    node) label="${CHAINCODE}_node_$(code_digest "$path")" ;;
    *) die "--lang $cc_lang: ccaas (default) or node" ;;
  esac
  package=$dir/chaincode/$label.tar.gz
  if [[ ! -f $package && $cc_lang == node ]]; then make_node_package "$path" "$label" "$package"; fi
  if [[ ! -f $package ]]; then make_package "$label" "$package"; fi
  id=$(as_peer 1 0 admin peer lifecycle chaincode calculatepackageid "$package")
  n=$(peers_per_org "$profile_now")

  [[ $cc_name =~ ^[a-z][a-z0-9_-]{0,48}$ ]] || die "chaincode name $cc_name: lower-case letters, digits, _ and - only"
  # The channels where this code is not yet the committed definition of the name.
  for ch in $(channels); do
    current=$(committed || true)
    if [[ -z $current || ! -f $(committed_marker) || $(cat "$(committed_marker)") != "$id" ]]; then pending+=("$ch"); fi
  done
  if ((${#pending[@]} == 0)); then
    if [[ $cc_lang == ccaas ]]; then
      # Committed already, but the servers may be running another name's code (the last deploy's).
      if [[ ! -f $dir/chaincode/package-id || $(cat "$dir/chaincode/package-id") != "$id" ]]; then
        stop_chaincode_servers
        echo "$id" >"$dir/chaincode/package-id"
      fi
      echo "$path" >"$dir/chaincode/path"
      start_chaincode_servers
    fi
    for ch in $(channels); do
      for org in 1 2; do
        wait_for "peer0.org$org" "a chaincode answer on $ch" 30 chaincode_answers "$org" 0
        wait_for "peer0.org$org" "endorsers of both orgs on $ch" 30 endorsers_known "$org" 0
      done
    done
    log "chaincode $label is already committed as $cc_name on $(channels | paste -sd ' ')"
    return 0
  fi

  for org in 1 2; do
    for ((j = 0; j < n; j++)); do
      pkgs=$(as_peer "$org" "$j" admin peer lifecycle chaincode queryinstalled -O json 2>/dev/null || echo '{}')
      if ! jq -e --arg id "$id" '.installed_chaincodes // [] | any(.package_id == $id)' <<<"$pkgs" >/dev/null; then
        as_peer "$org" "$j" admin peer lifecycle chaincode install "$package" >>"$logs/peer-cli.log" 2>&1 ||
          die "install on peer$j.org$org failed; see $logs/peer-cli.log"
      fi
    done
  done

  # A node package runs where the peer launches it; a service package in our chaincode servers.
  # A peer runs one chaincode per package id and sends it every channel's transactions (each
  # names its channel), so the same two servers serve the name on every shard.
  if [[ $cc_lang == ccaas ]]; then
    if [[ ! -f $dir/chaincode/package-id || $(cat "$dir/chaincode/package-id") != "$id" ]]; then
      stop_chaincode_servers
      echo "$id" >"$dir/chaincode/package-id"
    fi
    echo "$path" >"$dir/chaincode/path"
    start_chaincode_servers
  fi

  # The channels are independent: their approvals and commits go through the orderer side by side.
  local commits=()
  for ch in "${pending[@]}"; do
    commit_on_channel "$label" "$id" "$n" &
    commits+=($!)
  done
  for i in "${!commits[@]}"; do
    wait "${commits[$i]}" || die "the chaincode was not committed on ${pending[$i]}; see the lines above"
  done
  log "deployed $label as $cc_name on ${pending[*]} (endorsed by Org1 and Org2) in $((SECONDS - started)) s"
}

# An approval that an interrupted deploy already made is refused as "unchanged content": that
# organisation has approved, which is what we want.
approve_for_org() {
  local org=$1 label=$2 id=$3 sequence=$4 policy=$5 out rc=0
  out=$(as_peer "$org" 0 admin peer lifecycle chaincode approveformyorg -o "$(at "$(orderer_port 0)")" \
    --ordererTLSHostnameOverride localhost --tls --cafile "$(orderer_tls_ca)" -C "$ch" -n "$cc_name" \
    --version "$label" --package-id "$id" --sequence "$sequence" --signature-policy "$policy" \
    --waitForEventTimeout 60s 2>&1) || rc=$?
  printf '%s\n' "$out" >>"$logs/peer-cli.log"
  ((rc == 0)) || [[ $out == *"redefine uncommitted sequence ($sequence)"*"with unchanged content"* ]]
}

committed_marker() { echo "$dir/chaincode/committed-$ch-$cc_name"; }

# Approves (both orgs) and commits LABEL as cc_name on channel `ch`, with the next sequence there,
# and waits until every peer has the definition and the chaincode answers a read on it.
commit_on_channel() {
  local label=$1 id=$2 n=$3 current sequence org j policy="AND('Org1MSP.peer','Org2MSP.peer')" approvals=() peers=()
  current=$(committed || true)
  sequence=$(($(jq '.sequence // 0' <<<"${current:-{\}}") + 1))
  for org in 1 2; do
    approve_for_org "$org" "$label" "$id" "$sequence" "$policy" &
    approvals+=($!)
  done
  for org in 1 2; do
    wait "${approvals[$((org - 1))]}" || die "Org$org did not approve $label on $ch; see $logs/peer-cli.log"
  done
  for org in 1 2; do
    peers+=(--peerAddresses "$(at "$(peer_port "$org" 0)")" --tlsRootCertFiles "$(org_tls_ca "$org")")
  done
  as_peer 1 0 admin peer lifecycle chaincode commit -o "$(at "$(orderer_port 0)")" \
    --ordererTLSHostnameOverride localhost --tls --cafile "$(orderer_tls_ca)" -C "$ch" -n "$cc_name" \
    --version "$label" --sequence "$sequence" --signature-policy "$policy" "${peers[@]}" \
    --waitForEventTimeout 60s >>"$logs/peer-cli.log" 2>&1 || die "commit of $label on $ch failed; see $logs/peer-cli.log"
  for org in 1 2; do
    for ((j = 0; j < n; j++)); do
      wait_for "peer$j.org$org" "the chaincode definition on $ch (sequence $sequence)" 30 definition_at "$org" "$j" "$sequence"
      wait_for "peer$j.org$org" "a chaincode answer on $ch" 60 chaincode_answers "$org" "$j"
      wait_for "peer$j.org$org" "endorsers of both orgs on $ch" 30 endorsers_known "$org" "$j"
    done
  done
  echo "$id" >"$(committed_marker)"
}

definition_at() {
  as_peer "$1" "$2" admin peer lifecycle chaincode querycommitted -C "$ch" -n "$cc_name" -O json 2>/dev/null |
    jq -e --argjson s "$3" '.sequence == $s' >/dev/null
}

# A submit through a peer fails "no combination of peers can be derived" until its discovery has
# learnt, by gossip, a peer of every org the policy names: a few seconds after a commit or restart.
endorsers_known() {
  local org=$1 j=$2
  (
    # Any member may ask; the application identity's key is a file on every kind of network.
    eval "$(peer_cli_env "$org" application)"
    local msp=$CORE_PEER_MSPCONFIGPATH
    discover endorsers --channel "$ch" --chaincode "$cc_name" --server "$(at "$(peer_port "$org" "$j")")" \
      --peerTLSCA "$CORE_PEER_TLS_ROOTCERT_FILE" --MSP "$CORE_PEER_LOCALMSPID" \
      --userCert "$(echo "$msp"/signcerts/*.pem)" --userKey "$(echo "$msp"/keystore/*)" 2>/dev/null
  ) | jq -e '[.[0].EndorsersByGroups[][].MSPID] | (index("Org1MSP") != null) and (index("Org2MSP") != null)' >/dev/null
}

chaincode_answers() {
  as_peer "$1" "$2" admin peer chaincode query -C "$ch" -n "$cc_name" \
    -c '{"Args":["org.hyperledger.fabric:GetMetadata"]}' >/dev/null 2>&1
}

# --- start: one process back ----------------------------------------------------------------------
# What an operator does after one node died: start that node alone, on its data, and wait until it
# serves (the fault suite's restart). The others keep running; `up` would restart them all.
cmd_start() {
  load_fabric
  local name=${positional[0]:-} p n org j i ch=$CHANNEL
  [[ -f $dir/.ready ]] || die "no running network in $dir; run 'up' first"
  p=$(cat "$dir/profile")
  n=$(orderer_count "$p")
  [[ -n $name ]] || die "start NAME: which process (see 'status')"
  if [[ -f $pids/$name.pid ]] && alive "$name"; then
    log "$name is already running"
    return 0
  fi
  case $name in
    ca.org[12])
      org=${name#ca.org}
      start_ca "$org"
      wait_for "$name" "the CA's TLS endpoint" 30 ca_ready "$(ca_port "$org")" "$(org_tls_ca "$org")"
      ;;
    ca.orderer)
      is_hsm || die "only an --hsm network has ca.orderer"
      start_ca orderer
      wait_for "$name" "the CA's TLS endpoint" 30 ca_ready "$(ca_port orderer)" "$(orderer_tls_ca)"
      ;;
    orderer[0-9])
      i=${name#orderer}
      ((i < n)) || die "the $p network has no $name"
      start_orderer "$i"
      wait_for "$name" "health and admin port" 30 eval "healthy $(($(orderer_port "$i") + 2)) && port_listens $(($(orderer_port "$i") + 1))"
      wait_channels_ordered "$name" "$n"
      ;;
    peer[0-9].org[12])
      org=${name#*.org}
      j=${name#peer}
      j=${j%%.*}
      ((j < $(peers_per_org "$p"))) || die "the $p network has no $name"
      start_peer "$org" "$j"
      wait_for "$name" "health and gRPC port" 30 eval "healthy $(($(peer_port "$org" "$j") + 2)) && port_listens $(peer_port "$org" "$j")"
      for ch in $(channels); do wait_for "$name" "channel $ch" 30 peer_joined "$org" "$j"; done
      ;;
    cc.org[12])
      [[ -f $dir/chaincode/package-id ]] || die "no chaincode deployed in $dir"
      start_chaincode_servers
      ;;
    *) die "start $name: no such process (ca.orgN, ordererN, peerJ.orgN, cc.orgN)" ;;
  esac
  log "$name started in $dir"
}

# --- status, logs, env, down ----------------------------------------------------------------------
health_of() {
  local name=$1 port
  case $name in
    ca.orderer) port=$(($(ca_port orderer) + 1)) ;;
    ca.org*) port=$(($(ca_port "${name#ca.org}") + 1)) ;;
    orderer*) port=$(($(orderer_port "${name#orderer}") + 2)) ;;
    peer*)
      local j=${name#peer} org=${name#*.org}
      port=$(($(peer_port "$org" "${j%%.*}") + 2))
      ;;
    cc.org*)
      port_listens "$(cc_port "${name#cc.org}")" && echo "listening" || echo "not listening"
      return
      ;;
  esac
  curl -fsS "http://$(at "$port")/healthz" 2>/dev/null | jq -r .status 2>/dev/null || echo "no answer"
}

cmd_status() {
  load_fabric
  [[ -f $dir/profile ]] || die "no network in $dir"
  local p name pid state height org j ch=$CHANNEL
  p=$(cat "$dir/profile")
  printf '%s network in %s\n' "$p" "$dir"
  printf '%-12s %-8s %-9s %s\n' PROCESS PID STATE HEALTH
  for name in $(all_names "$p"); do
    pid=$(cat "$pids/$name.pid" 2>/dev/null || echo -)
    if alive "$name"; then state=running; else state=stopped; fi
    printf '%-12s %-8s %-9s %s\n' "$name" "$pid" "$state" "$([[ $state == running ]] && health_of "$name" || echo -)"
  done
  for org in 1 2; do
    for ((j = 0; j < $(peers_per_org "$p"); j++)); do
      for ch in $(channels); do
        height=$(as_peer "$org" "$j" admin peer channel getinfo -c "$ch" 2>/dev/null |
          sed -n 's/^Blockchain info: //p' | jq -r .height 2>/dev/null || true)
        printf 'peer%d.org%d  %s block height %s\n' "$j" "$org" "$ch" "${height:-unknown}"
      done
    done
  done
}

cmd_logs() {
  local name=${positional[0]:-}
  if [[ -z $name ]]; then
    [[ -d $logs ]] || die "no logs in $logs"
    find "$logs" -name '*.log' -printf '%f\n' | sed 's/\.log$//' | sort
    return
  fi
  [[ -f $logs/$name.log ]] || die "no log named $name (try: network/network.sh logs)"
  tail -n "${KEYFLEET_LOG_LINES:-100}" "$logs/$name.log"
}

cmd_env() {
  load_fabric
  local org=${positional[0]:-} identity=${positional[1]:-admin}
  [[ $org =~ ^Org[12]$ ]] || die "env needs an organisation: Org1 or Org2"
  [[ -f $dir/.ready ]] || die "no network in $dir; run 'up' first"
  if [[ -n $env_channel ]]; then
    grep -qxF -- "$env_channel" <(channels) || die "--channel $env_channel: not a channel of this network ($(channels | paste -sd ' '))"
    ch=$env_channel
  fi
  peer_cli_env "${org#Org}" "$identity"
}

cmd_down() {
  local stopped
  stopped=$(stop_all)
  if $keep; then
    log "stopped $stopped process(es); data kept in $dir"
  else
    rm -rf "$dir"
    log "stopped $stopped process(es); removed $dir"
  fi
}

# One run at a time changes a network: a second `up`, `deploy`, `start` or `down` on the same directory waits.
if [[ $verb =~ ^(up|deploy|start|down)$ ]]; then
  exec 9>"$dir.lock"
  flock -w 300 9 || die "another network.sh run holds $dir.lock"
fi

case $verb in
  up) cmd_up ;;
  deploy) cmd_deploy ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
  start) cmd_start ;;
  env) cmd_env ;;
  down) cmd_down ;;
  -h | --help | help) usage ;;
  *)
    log "unknown verb $verb"
    usage >&2
    exit 2
    ;;
esac
