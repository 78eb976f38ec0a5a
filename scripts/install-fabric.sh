#!/usr/bin/env bash
# Installs the Hyperledger Fabric binaries keyfleet's network needs into a cache directory
# that git ignores, through Go's module proxy, pinned by commit.
#
# Fabric's Go module path has no /v3 suffix, so `go install …@v3.1.5` is rejected; the
# release commit works and Go resolves it to a pseudo-version.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/install-fabric.sh [--check]

Installs peer, orderer, configtxgen, cryptogen, osnadmin and the chaincode-as-a-service
external builder (detect, build, release) of Hyperledger Fabric v3.1.5.

  --check   install nothing; exit 0 if the binaries are usable, 1 if not

Environment:
  FABRIC_BIN          use Fabric release binaries already on this machine (a directory
                      holding peer, orderer, configtxgen, cryptogen, osnadmin); nothing is built
  KEYFLEET_CACHE_DIR  where built binaries go (default: <repo>/.cache)
  KEYFLEET_RETRY_FABRIC=1  ask the module proxy again even if it refused Fabric less than a day ago
EOF
}

readonly FABRIC_VERSION=3.1.5
readonly FABRIC_COMMIT=86c1172bec37e6590c6b1ae6f847833df48d65fc
readonly FABRIC_MODULE=github.com/hyperledger/fabric
readonly NODE_TOOLS=(peer orderer configtxgen cryptogen osnadmin)
readonly BUILDER_TOOLS=(detect build release)

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${KEYFLEET_CACHE_DIR:=$repo_root/.cache}"
fabric_dir="$KEYFLEET_CACHE_DIR/fabric-$FABRIC_VERSION"
bin_dir="$fabric_dir/bin"
builder_dir="$fabric_dir/ccaas_builder/bin"
stamp="$fabric_dir/.installed-commit"

log() { printf 'install-fabric: %s\n' "$*" >&2; }

have_all() {
  local dir=$1
  shift
  local tool
  for tool in "$@"; do
    [[ -x "$dir/$tool" ]] || return 1
  done
}

check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

if [[ -n "${FABRIC_BIN:-}" ]]; then
  if have_all "$FABRIC_BIN" "${NODE_TOOLS[@]}"; then
    log "using Fabric binaries from FABRIC_BIN ($("$FABRIC_BIN/peer" version 2>/dev/null | awk '/Version:/ {print $2; exit}'))"
    exit 0
  fi
  log "FABRIC_BIN is set but does not hold all of: ${NODE_TOOLS[*]}"
  exit 1
fi

if [[ -f "$stamp" && "$(cat "$stamp")" == "$FABRIC_COMMIT" ]] &&
  have_all "$bin_dir" "${NODE_TOOLS[@]}" && have_all "$builder_dir" "${BUILDER_TOOLS[@]}"; then
  $check_only || log "Fabric $FABRIC_VERSION already installed in $bin_dir"
  exit 0
fi
$check_only && exit 1

# A proxy that refused Fabric is asked again at most once a day, unless told to retry now.
unavailable="$fabric_dir/.unavailable"
if [[ -f "$unavailable" && "${KEYFLEET_RETRY_FABRIC:-0}" != 1 ]] &&
  [[ -n "$(find "$unavailable" -mmin -1440 2>/dev/null)" ]]; then
  log "Fabric was unavailable at $(date -r "$unavailable" -u +%FT%TZ): $(head -n 1 "$unavailable")"
  log "(asked again after a day, or now with KEYFLEET_RETRY_FABRIC=1)"
  exit 1
fi

command -v go >/dev/null || {
  log "Go is required to build Fabric (Go >= 1.26.4 for Fabric $FABRIC_VERSION)"
  exit 1
}

mkdir -p "$bin_dir" "$builder_dir"
build_log="$fabric_dir/go-install.log"
log "building Fabric $FABRIC_VERSION ($FABRIC_COMMIT) with $(go version | awk '{print $3}'); log: $build_log"

go_install() {
  local gobin=$1 pkg=$2
  if ! GOBIN="$gobin" CGO_ENABLED=0 go install "$FABRIC_MODULE/$pkg@$FABRIC_COMMIT" >>"$build_log" 2>&1; then
    log "go install $FABRIC_MODULE/$pkg failed:"
    tail -n 5 "$build_log" >&2
    grep -m 1 -o '[0-9]\{3\} [A-Za-z ]*' "$build_log" >"$unavailable" || echo "go install failed" >"$unavailable"
    exit 1
  fi
}

: >"$build_log"
for tool in "${NODE_TOOLS[@]}"; do
  go_install "$bin_dir" "cmd/$tool"
done
for tool in "${BUILDER_TOOLS[@]}"; do
  go_install "$builder_dir" "ccaas_builder/cmd/$tool"
done

# The peer and orderer read core.yaml / orderer.yaml; take the sample configuration from
# the very module source that was built, so the configuration matches the binaries.
module_dir=$(go list -m -f '{{.Dir}}' "$FABRIC_MODULE@$FABRIC_COMMIT" 2>>"$build_log")
mkdir -p "$fabric_dir/config"
cp "$module_dir/sampleconfig/core.yaml" "$module_dir/sampleconfig/orderer.yaml" "$fabric_dir/config/"
chmod u+w "$fabric_dir/config/"*

rm -f "$unavailable"
echo "$FABRIC_COMMIT" >"$stamp"
log "installed into $bin_dir: ${NODE_TOOLS[*]}"
log "installed into $builder_dir: ${BUILDER_TOOLS[*]}"
