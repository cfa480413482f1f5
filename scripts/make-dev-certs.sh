#!/usr/bin/env bash
# Makes development certificates with `coalition ca` (see certs/README.md). Never for production.
# Uses the `coalition` binary named by $COALITION, else one on PATH, else builds it with Swift.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-"$root/.coalition/certs"}
if [ -n "${COALITION:-}" ]; then
  bin=$COALITION
elif command -v coalition >/dev/null 2>&1; then
  bin=$(command -v coalition)
else
  cd "$root"
  swift build --product coalition >&2
  bin=$(swift build --show-bin-path)/coalition
fi
"$bin" ca init --dir "$dir" --force
"$bin" ca issue --dir "$dir" --gateway 127.0.0.1
for site in mall-01 hotel-01 park-01 office-01; do "$bin" ca issue --dir "$dir" --site "$site"; done
"$bin" ca issue --dir "$dir" --operator alice
"$bin" ca issue --dir "$dir" --role channel member-app
[ -f "$dir/voucher-1.key" ] || "$bin" ca voucher-key --dir "$dir" --id 1
echo "development certificates in $dir (made with $bin)" >&2
