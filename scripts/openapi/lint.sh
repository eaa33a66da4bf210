#!/usr/bin/env bash
# Lints docs/openapi.yaml with @redocly/cli (installed by scripts/install-deps.sh from
# scripts/openapi/package-lock.json); warnings fail too (redocly.yaml).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
redocly="$here/node_modules/.bin/redocly"
if [ ! -x "$redocly" ]; then
  echo "openapi lint: $redocly is missing; run scripts/install-deps.sh" >&2
  exit 1
fi
exec "$redocly" lint --config "$here/redocly.yaml" "$here/../../docs/openapi.yaml"
