#!/usr/bin/env bash
# Installs what a fresh machine lacks for keyfleet, and nothing that is already there:
# OS packages, npm dependencies, the Fabric binaries; then builds the TypeScript packages.
# Safe to run any number of times; quick when nothing is missing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bootstrap.sh

Environment:
  KEYFLEET_REQUIRE_FABRIC=1  fail when the Fabric binaries cannot be installed
                             (by default keyfleet goes on without them and says so)
  FABRIC_BIN                 use Fabric release binaries already on this machine
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

log() { printf 'bootstrap: %s\n' "$*" >&2; }

# OS packages, keyed by a file each one installs.
declare -A os_packages=(
  [softhsm2]=/usr/lib/softhsm/libsofthsm2.so
  [opensc]=/usr/bin/pkcs11-tool
  [jq]=/usr/bin/jq
  [shellcheck]=/usr/bin/shellcheck
  [openssl]=/usr/bin/openssl
)
missing=()
for pkg in "${!os_packages[@]}"; do
  [[ -e "${os_packages[$pkg]}" ]] || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  as_root=()
  ((EUID == 0)) || as_root=(sudo)
  log "installing OS packages: ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm dependencies: `npm ci` when the lock file changed since the last install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm dependencies"
  npm ci --no-fund --no-audit --loglevel=error
fi
if [[ ! -f node_modules/pkcs11js/build/Release/pkcs11.node ]]; then
  log "pkcs11js has no native binary; rebuilding it (needs allowScripts in package.json)"
  npm rebuild pkcs11js --loglevel=error
fi

# Fabric binaries. Without them everything but the network still builds and tests.
if ! bash scripts/install-fabric.sh; then
  if [[ "${KEYFLEET_REQUIRE_FABRIC:-0}" == 1 ]]; then
    log "the Fabric binaries could not be installed and KEYFLEET_REQUIRE_FABRIC=1"
    exit 1
  fi
  log "WARNING: the Fabric binaries could not be installed (see above);"
  log "WARNING: the network, and every test that needs it, is unavailable on this machine."
fi

log "building TypeScript packages"
npx tsc -b
