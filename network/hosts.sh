#!/usr/bin/env bash
# Private "hosts" for a multi-host Fabric network on one machine: Linux network namespaces, one per
# host, each with its own address on one private bridge. The bridge lives in a namespace of its own,
# so nothing here is linked to the machine's own network: no route, no iptables rule and no
# forwarding setting changes, and no server started on these hosts is reachable from outside.
# `network/network.sh up --hosts FILE` places the nodes on them.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: network/hosts.sh up PREFIX [SUBNET] > FILE    make the hosts, print network.sh's hosts file
       network/hosts.sh down PREFIX                  delete them (and whatever still runs in them)

  PREFIX   names the namespaces: PREFIX-switch (the bridge), PREFIX-orderer, PREFIX-org1,
           PREFIX-org2 and PREFIX-client (letters, digits and -, at most 12 characters)
  SUBNET   the first three octets of a private /24 (default 10.123.0): the hosts are .10 (orderer),
           .11 (org1), .12 (org2) and .20 (client)
Needs root (ip netns). `up` on existing hosts of PREFIX fails: run `down` first.
EOF
}

log() { printf 'hosts: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

verb=${1:-}
prefix=${2:-}
subnet=${3:-10.123.0}
case $verb in
  -h | --help | help)
    usage
    exit 0
    ;;
  up | down) ;;
  *)
    usage >&2
    exit 2
    ;;
esac
[[ $prefix =~ ^[A-Za-z0-9-]{1,12}$ ]] || die "PREFIX must be 1 to 12 letters, digits or -, got '$prefix'"
# Private /24s only (RFC 1918): the hosts must never take an address someone else could route to.
[[ $subnet =~ ^(10\.[0-9]+|172\.(1[6-9]|2[0-9]|3[01])|192\.168)\.[0-9]+$ ]] ||
  die "SUBNET must be the first three octets of a private range (10/8, 172.16/12, 192.168/16), got '$subnet'"

readonly HOSTS=(orderer org1 org2 client)
host_number() { case $1 in orderer) echo 10 ;; org1) echo 11 ;; org2) echo 12 ;; client) echo 20 ;; esac }
switch=$prefix-switch

exists() { ip netns list | awk '{print $1}' | grep -qxF -- "$1"; }

# Stops every process still running in namespace NS (a leftover of a failed run), then deletes NS.
delete_ns() {
  local ns=$1 pids
  exists "$ns" || return 0
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [[ -n $pids ]]; then
    log "stopping $(wc -w <<<"$pids") leftover process(es) in $ns"
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 50); do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -z $pids ]] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  fi
  ip netns delete "$ns"
}

cmd_down() {
  local host
  for host in "${HOSTS[@]}"; do delete_ns "$prefix-$host"; done
  delete_ns "$switch"
}

cmd_up() {
  local host ns addr
  for host in "${HOSTS[@]}" switch; do
    exists "$prefix-$host" && die "namespace $prefix-$host exists already: run 'network/hosts.sh down $prefix' first"
  done
  # Whatever fails half-way is undone: no namespace of a failed `up` is left behind.
  trap 'cmd_down' ERR
  ip netns add "$switch"
  ip -n "$switch" link add br0 type bridge
  ip -n "$switch" link set br0 up
  for host in "${HOSTS[@]}"; do
    ns=$prefix-$host
    addr=$subnet.$(host_number "$host")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # One veth pair per host: eth0 inside the host, its other end a port of the switch's bridge.
    ip -n "$switch" link add "v-$host" type veth peer name eth0 netns "$ns"
    ip -n "$switch" link set "v-$host" master br0 up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    printf '%-8s %-20s %s\n' "$host" "$ns" "$addr"
  done
  trap - ERR
}

case $verb in
  up) cmd_up ;;
  down) cmd_down ;;
esac
