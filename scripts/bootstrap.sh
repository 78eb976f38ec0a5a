#!/usr/bin/env bash
# Installs what a fresh machine lacks for keyfleet, and nothing that is already there:
# OS packages, npm dependencies, the Fabric binaries; then builds the TypeScript packages.
# Safe to run any number of times; quick when nothing is missing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bootstrap.sh

Environment (passed on to scripts/install-fabric.sh):
  FABRIC_BIN, FABRIC_CA_BIN   use Fabric release binaries already on this machine
  KEYFLEET_FABRIC_MIRROR      a local Fabric release mirror
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
  [chromium]=/usr/bin/chromium
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

# Fabric and Fabric CA binaries: the ledger is always a real network.
bash scripts/install-fabric.sh

log "building TypeScript packages"
npx tsc -b
