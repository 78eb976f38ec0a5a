#!/usr/bin/env bash
# Installs the Hyperledger Fabric and Fabric CA binaries keyfleet's network runs on, into a
# cache that git ignores. Sources, in order of preference:
#   1. binaries the user already has (FABRIC_BIN, FABRIC_CA_BIN);
#   2. a local release mirror (KEYFLEET_FABRIC_MIRROR, or ../fabric-release and
#      ../shared/fabric-release beside the project when they exist);
#   3. the official release download (machines with internet access);
#   4. a pinned `go install` (Fabric only; the CA is not buildable that way).
# Every archive is checked against its SHA-256 before it is unpacked. When the right version is
# already unpacked, nothing is done. The result is written to <cache>/fabric.env, which
# network/network.sh sources.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/install-fabric.sh [--check]

Installs Hyperledger Fabric 3.1.5 (peer, orderer, configtxgen, osnadmin, cryptogen, the
chaincode-as-a-service builder, sample configuration) and Fabric CA 1.5.21.

  --check   install nothing; exit 0 if usable binaries are installed, 1 if not

Environment:
  FABRIC_BIN              a directory with Fabric release binaries (peer, orderer, ...);
                          its ../config and ../builders are used when present
  FABRIC_CA_BIN           a directory with fabric-ca-server and fabric-ca-client
  KEYFLEET_FABRIC_MIRROR  a directory laid out like the release assets, with SHA256SUMS
  KEYFLEET_CACHE_DIR      where archives are unpacked (default: <repo>/.cache)
  KEYFLEET_FABRIC_SHA256  digests (name=sha256,name=sha256) of downloaded archives, when
                          the pinned list in scripts/fabric-release.sha256 does not name them
EOF
}

readonly FABRIC_VERSION=3.1.5
readonly FABRIC_COMMIT=86c1172bec37e6590c6b1ae6f847833df48d65fc
readonly CA_VERSION=1.5.21
readonly FABRIC_ARCHIVE=hyperledger-fabric-linux-amd64-$FABRIC_VERSION.tar.gz
readonly CA_ARCHIVE=hyperledger-fabric-ca-linux-amd64-$CA_VERSION.tar.gz
readonly FABRIC_TOOLS=(peer orderer configtxgen cryptogen osnadmin)
readonly CA_TOOLS=(fabric-ca-server fabric-ca-client)
readonly BUILDER_TOOLS=(detect build release)

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${KEYFLEET_CACHE_DIR:=$repo_root/.cache}"
fabric_dir="$KEYFLEET_CACHE_DIR/fabric-$FABRIC_VERSION"
ca_dir="$KEYFLEET_CACHE_DIR/fabric-ca-$CA_VERSION"
env_file="$KEYFLEET_CACHE_DIR/fabric.env"

log() { printf 'install-fabric: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    usage >&2
    exit 2
    ;;
esac

have_all() {
  local dir=$1 tool
  shift
  for tool in "$@"; do [[ -x "$dir/$tool" ]] || return 1; done
}

version_of() { "$1" version 2>/dev/null | awk '/Version:/ {print $2; exit}'; }

# A directory is "installed" when it holds the tools and a stamp naming the version it was made for.
installed() {
  local dir=$1 version=$2
  shift 2
  [[ -f "$dir/.version" && "$(cat "$dir/.version")" == "$version" ]] && have_all "$dir/bin" "$@"
}

# The digest an archive must have: the mirror's SHA256SUMS, the project's pinned list, or the user's.
expected_sha256() {
  local name=$1 sums=${2:-} pinned
  if [[ -n "$sums" && -f "$sums" ]]; then
    awk -v n="$name" '$2 == n || $2 == "*" n {print $1; exit}' "$sums"
    return
  fi
  pinned=$(awk -v n="$name" '$2 == n {print $1; exit}' "$repo_root/scripts/fabric-release.sha256")
  if [[ -n "$pinned" ]]; then
    echo "$pinned"
    return
  fi
  tr ',' '\n' <<<"${KEYFLEET_FABRIC_SHA256:-}" | awk -F= -v n="$name" '$1 == n {print $2; exit}'
}

# Verifies an archive's SHA-256, then unpacks it into a fresh directory and stamps it.
unpack() {
  local archive=$1 expected=$2 dest=$3 version=$4 actual
  [[ -n "$expected" ]] || die "no SHA-256 is known for $(basename "$archive"); refusing to unpack it"
  actual=$(sha256sum "$archive" | awk '{print $1}')
  [[ "$actual" == "$expected" ]] || die "$(basename "$archive"): SHA-256 $actual, expected $expected"
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  tar -xzf "$archive" -C "$dest.tmp"
  echo "$version" >"$dest.tmp/.version"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
}

mirror_dirs() {
  if [[ -n "${KEYFLEET_FABRIC_MIRROR:-}" ]]; then
    echo "$KEYFLEET_FABRIC_MIRROR"
    return
  fi
  local candidate
  for candidate in "$repo_root/../fabric-release" "$repo_root/../shared/fabric-release"; do
    [[ -d "$candidate" ]] && (cd "$candidate" && pwd)
  done
  return 0
}

# Installs one archive from the first source that has it; prints the source's name.
install_archive() {
  local name=$1 dest=$2 version=$3 url=$4 mirror tmp
  while read -r mirror; do
    [[ -n "$mirror" && -f "$mirror/$name" ]] || continue
    unpack "$mirror/$name" "$(expected_sha256 "$name" "$mirror/SHA256SUMS")" "$dest" "$version"
    echo "mirror $mirror"
    return 0
  done < <(mirror_dirs)
  if command -v curl >/dev/null; then
    tmp=$(mktemp -d)
    if curl -fsSL --connect-timeout 10 -o "$tmp/$name" "$url" 2>/dev/null; then
      unpack "$tmp/$name" "$(expected_sha256 "$name")" "$dest" "$version"
      rm -rf "$tmp"
      echo "download $url"
      return 0
    fi
    rm -rf "$tmp"
  fi
  return 1
}

# Last resort for Fabric: build the tools from the release commit with Go.
go_install_fabric() {
  command -v go >/dev/null || return 1
  local module=github.com/hyperledger/fabric build_log="$KEYFLEET_CACHE_DIR/go-install.log" tool module_dir
  rm -rf "$fabric_dir.tmp"
  mkdir -p "$fabric_dir.tmp/bin" "$fabric_dir.tmp/builders/ccaas/bin" "$fabric_dir.tmp/config"
  : >"$build_log"
  for tool in "${FABRIC_TOOLS[@]}"; do
    GOBIN="$fabric_dir.tmp/bin" CGO_ENABLED=0 go install "$module/cmd/$tool@$FABRIC_COMMIT" >>"$build_log" 2>&1 || {
      log "go install $module/cmd/$tool failed: $(grep -m 1 -o '[0-9]\{3\} [A-Za-z ]*' "$build_log" || echo "see $build_log")"
      return 1
    }
  done
  for tool in "${BUILDER_TOOLS[@]}"; do
    GOBIN="$fabric_dir.tmp/builders/ccaas/bin" CGO_ENABLED=0 \
      go install "$module/ccaas_builder/cmd/$tool@$FABRIC_COMMIT" >>"$build_log" 2>&1 || return 1
  done
  module_dir=$(go list -m -f '{{.Dir}}' "$module@$FABRIC_COMMIT")
  cp "$module_dir"/sampleconfig/{core.yaml,orderer.yaml,configtx.yaml} "$fabric_dir.tmp/config/"
  chmod -R u+w "$fabric_dir.tmp/config"
  echo "$FABRIC_VERSION" >"$fabric_dir.tmp/.version"
  rm -rf "$fabric_dir"
  mv "$fabric_dir.tmp" "$fabric_dir"
}

# --- Fabric ---------------------------------------------------------------------------------
if [[ -n "${FABRIC_BIN:-}" ]]; then
  have_all "$FABRIC_BIN" "${FABRIC_TOOLS[@]}" || die "FABRIC_BIN=$FABRIC_BIN does not hold all of: ${FABRIC_TOOLS[*]}"
  fabric_bin=$(cd "$FABRIC_BIN" && pwd)
  fabric_home=$(dirname "$fabric_bin")
  fabric_source="FABRIC_BIN"
elif installed "$fabric_dir" "$FABRIC_VERSION" "${FABRIC_TOOLS[@]}"; then
  fabric_bin="$fabric_dir/bin" fabric_home="$fabric_dir" fabric_source="cache"
else
  $check_only && exit 1
  mkdir -p "$KEYFLEET_CACHE_DIR"
  url="https://github.com/hyperledger/fabric/releases/download/v$FABRIC_VERSION/$FABRIC_ARCHIVE"
  if fabric_source=$(install_archive "$FABRIC_ARCHIVE" "$fabric_dir" "$FABRIC_VERSION" "$url"); then
    :
  elif go_install_fabric; then
    fabric_source="go install $FABRIC_COMMIT"
  else
    die "Fabric $FABRIC_VERSION: no mirror holds $FABRIC_ARCHIVE, the download failed and go install failed; set FABRIC_BIN or KEYFLEET_FABRIC_MIRROR"
  fi
  fabric_bin="$fabric_dir/bin" fabric_home="$fabric_dir"
fi

# --- Fabric CA ------------------------------------------------------------------------------
if [[ -n "${FABRIC_CA_BIN:-}" ]]; then
  have_all "$FABRIC_CA_BIN" "${CA_TOOLS[@]}" || die "FABRIC_CA_BIN=$FABRIC_CA_BIN does not hold: ${CA_TOOLS[*]}"
  ca_bin=$(cd "$FABRIC_CA_BIN" && pwd) ca_source="FABRIC_CA_BIN"
elif have_all "$fabric_bin" "${CA_TOOLS[@]}"; then
  ca_bin="$fabric_bin" ca_source="FABRIC_BIN"
elif installed "$ca_dir" "$CA_VERSION" "${CA_TOOLS[@]}"; then
  ca_bin="$ca_dir/bin" ca_source="cache"
else
  $check_only && exit 1
  url="https://github.com/hyperledger/fabric-ca/releases/download/v$CA_VERSION/$CA_ARCHIVE"
  ca_source=$(install_archive "$CA_ARCHIVE" "$ca_dir" "$CA_VERSION" "$url") ||
    die "Fabric CA $CA_VERSION: no mirror holds $CA_ARCHIVE and the download failed; set FABRIC_CA_BIN or KEYFLEET_FABRIC_MIRROR"
  ca_bin="$ca_dir/bin"
fi

builder="$fabric_home/builders/ccaas"
config="$fabric_home/config"
have_all "$builder/bin" "${BUILDER_TOOLS[@]}" || die "no chaincode-as-a-service builder in $builder/bin"
[[ -f "$config/core.yaml" && -f "$config/orderer.yaml" ]] || die "no core.yaml and orderer.yaml in $config"
$check_only && exit 0

mkdir -p "$KEYFLEET_CACHE_DIR"
cat >"$env_file.tmp" <<EOF
# Written by scripts/install-fabric.sh; sourced by network/network.sh.
FABRIC_BIN_DIR='$fabric_bin'
FABRIC_CA_BIN_DIR='$ca_bin'
FABRIC_CONFIG_DIR='$config'
FABRIC_CCAAS_BUILDER='$builder'
EOF
mv "$env_file.tmp" "$env_file"
log "Fabric $(version_of "$fabric_bin/peer") from $fabric_source; Fabric CA $("$ca_bin/fabric-ca-server" version 2>/dev/null | awk '/Version:/ {print $2; exit}') from $ca_source"
