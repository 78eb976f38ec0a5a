#!/usr/bin/env bash
# `npm run bench`: one benchmark run on 127.0.0.1 (fresh SoftHSM tokens, own gateways on free
# ports); prints a table and writes bench/results/latest.json. See BENCHMARKS.md.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: scripts/bench.sh [bench options]

Options are passed to bench/dist/bench.js:
  --devices N       virtual devices (default 300)      --ops N        operations per run (default 300)
  --runs N          timed runs per row, median (3)     --warmup N     warm-up operations (default 60)
  --concurrency N   operations in flight (default 64)  --batch N      Merkle batch size (default 256)
  --signs N         signatures per HSM run (20000)     --max-seconds  bound on the whole run (900)
  --no-profile      skip the CPU-profile pass          --out FILE     (default bench/results/latest.json)
EOF_USAGE
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
bash scripts/bootstrap.sh
npx tsc -b bench
exec node bench/dist/bench.js "$@"
