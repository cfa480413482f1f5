#!/usr/bin/env bash
# Makes development certificates with `coalition ca` (see certs/README.md). Never for production.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-"$root/.coalition/certs"}
cd "$root"
swift build --product coalition >&2
bin=$(swift build --show-bin-path)/coalition
"$bin" ca init --dir "$dir" --force
"$bin" ca issue --dir "$dir" --gateway 127.0.0.1
for site in mall-01 hotel-01 park-01 office-01; do "$bin" ca issue --dir "$dir" --site "$site"; done
"$bin" ca issue --dir "$dir" --operator alice
echo "development certificates in $dir" >&2
