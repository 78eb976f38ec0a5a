#!/usr/bin/env bash
# Creates (or checks) keyfleet's development SoftHSM2 store: its own softhsm2.conf, one token,
# and every key the gateway needs, made through the gateway's HSM layer so they follow its
# conventions (CKA_ID = SHA-256 of the EC point; sensitive; never extractable). Idempotent.
# PINs are taken from the environment or generated once into 0600 files; never printed.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
usage: scripts/softhsm-init.sh [-h]

Creates the SoftHSM2 store, token and gateway keys if missing; running it again changes nothing.

environment (all optional):
  KEYFLEET_HSM_DIR      store directory (default: <repo>/.softhsm, ignored by git)
  KEYFLEET_HSM_TOKEN    token label (default: keyfleet)
  KEYFLEET_HSM_MODULE   PKCS#11 library (default: /usr/lib/softhsm/libsofthsm2.so)
  KEYFLEET_HSM_SO_PIN   SO PIN; if unset, read from or generated into $KEYFLEET_HSM_DIR/so-pin
  KEYFLEET_HSM_PIN      user PIN; if unset, read from or generated into $KEYFLEET_HSM_DIR/user-pin
  KEYFLEET_HSM_CLUSTER_SIZE  N >= 2 makes an HSM cluster (docs/hsm-cluster.md): tokens
                        $KEYFLEET_HSM_TOKEN, $KEYFLEET_HSM_TOKEN-2 … -N, the gateway keys made
                        replicable in the first, and the SO's cluster KEK in every one (default 1)

needs: softhsm2-util, node, and the gateway built (npx tsc -b gateway; built here if missing).
outputs: $KEYFLEET_HSM_DIR/softhsm2.conf, tokens/, public/<key>.pem; prints the env to use.
EOF
}

case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  '') ;;
  *)
    usage >&2
    exit 2
    ;;
esac

: "${KEYFLEET_HSM_DIR:=$repo_root/.softhsm}"
: "${KEYFLEET_HSM_TOKEN:=keyfleet}"
: "${KEYFLEET_HSM_MODULE:=/usr/lib/softhsm/libsofthsm2.so}"
: "${KEYFLEET_HSM_CLUSTER_SIZE:=1}"

die() {
  printf 'softhsm-init: %s\n' "$*" >&2
  exit 1
}

[[ $KEYFLEET_HSM_CLUSTER_SIZE =~ ^[1-9][0-9]?$ ]] || die "KEYFLEET_HSM_CLUSTER_SIZE must be 1 to 99"
command -v softhsm2-util >/dev/null || die "softhsm2-util not found (apt-get install softhsm2)"
command -v node >/dev/null || die "node not found"
[[ -r $KEYFLEET_HSM_MODULE ]] || die "PKCS#11 library $KEYFLEET_HSM_MODULE not found"

umask 077
mkdir -p "$KEYFLEET_HSM_DIR/tokens"
chmod 700 "$KEYFLEET_HSM_DIR" "$KEYFLEET_HSM_DIR/tokens"
hsm_dir=$(cd "$KEYFLEET_HSM_DIR" && pwd)
conf="$hsm_dir/softhsm2.conf"

# Rewritten every run from the same inputs, so it is always what this script says.
cat >"$conf" <<EOF
# Written by scripts/softhsm-init.sh
directories.tokendir = $hsm_dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF

# Prints nothing; sets the named variable from the environment, the file, or a new random PIN.
pin_from() {
  local var=$1 file=$2
  if [[ -n ${!var:-} ]]; then
    pin_source[$var]=environment
    return
  fi
  if [[ ! -s $file ]]; then
    # 24 characters from the base64 alphabet, no newline; umask 077 keeps the file 0600.
    head -c 18 /dev/urandom | base64 | tr -d '\n' >"$file"
  fi
  chmod 600 "$file"
  printf -v "$var" '%s' "$(<"$file")"
  pin_source[$var]=$file
}
declare -A pin_source=()
pin_from KEYFLEET_HSM_SO_PIN "$hsm_dir/so-pin"
pin_from KEYFLEET_HSM_PIN "$hsm_dir/user-pin"

cli="$repo_root/gateway/dist/hsm/cli.js"
if [[ ! -f $cli ]]; then
  printf 'softhsm-init: building the gateway (npx tsc -b gateway)\n'
  (cd "$repo_root" && npx tsc -b gateway)
fi

# PINs travel in the child's environment, never on a command line (argv is world-readable).
export SOFTHSM2_CONF=$conf KEYFLEET_HSM_TOKEN KEYFLEET_HSM_MODULE KEYFLEET_HSM_SO_PIN KEYFLEET_HSM_PIN
export KEYFLEET_HSM_URI="pkcs11:token=$KEYFLEET_HSM_TOKEN"
node "$cli" init-token
replicas=()
for ((n = 2; n <= KEYFLEET_HSM_CLUSTER_SIZE; n++)); do
  KEYFLEET_HSM_TOKEN="$KEYFLEET_HSM_TOKEN-$n" node "$cli" init-token
  replicas+=("pkcs11:token=$KEYFLEET_HSM_TOKEN-$n")
done
if ((KEYFLEET_HSM_CLUSTER_SIZE > 1)); then
  # The security officer's ceremony: one cluster KEK, brought into every token (docs/hsm-cluster.md).
  tokens=$KEYFLEET_HSM_TOKEN
  for ((n = 2; n <= KEYFLEET_HSM_CLUSTER_SIZE; n++)); do tokens+=",$KEYFLEET_HSM_TOKEN-$n"; done
  KEYFLEET_HSM_CLUSTER_TOKENS=$tokens node "$cli" cluster-init
  export KEYFLEET_HSM_REPLICABLE=1
fi
# The SO PIN is not needed past this point.
env -u KEYFLEET_HSM_SO_PIN node "$cli" ensure-keys --pem-dir "$hsm_dir/public"

if [[ ${pin_source[KEYFLEET_HSM_PIN]} == environment ]]; then
  pin_line='# user PIN: keep KEYFLEET_HSM_PIN set as it was for this script'
else
  pin_line="export KEYFLEET_HSM_PIN_FILE=${pin_source[KEYFLEET_HSM_PIN]}"
fi
cat <<EOF

SoftHSM store ready in $hsm_dir (public keys in $hsm_dir/public). Use:
  export SOFTHSM2_CONF=$conf
  export KEYFLEET_HSM_MODULE=$KEYFLEET_HSM_MODULE
  export KEYFLEET_HSM_URI=$KEYFLEET_HSM_URI
  $pin_line
EOF
if ((${#replicas[@]} > 0)); then
  replica_list=$(
    IFS=,
    printf '%s' "${replicas[*]}"
  )
  printf '  export KEYFLEET_HSM_REPLICAS=%s\n' "$replica_list"
fi
