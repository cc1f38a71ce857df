#!/usr/bin/env bash
# The schema as frontend tools see it (tests/schema/check.mjs): schema.graphql
# byte for byte against graphql-js's printing of a live printgate's
# introspection, then graphql-schema-linter and @graphql-eslint's
# schema-recommended.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin printgate
work=$(mktemp -d)
port=${PRINTGATE_SCHEMA_PORT:-18890}
PRINTGATE_JWT_SECRET=schema PRINTGATE_BIND="127.0.0.1:$port" \
  PRINTGATE_DATABASE_URL="sqlite://$work/schema.db?mode=rwc" target/debug/printgate serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
token=$(PRINTGATE_JWT_SECRET=schema target/debug/printgate token --sub schema-check)
(cd tests/schema && npm ci --no-audit --no-fund --silent)
node tests/schema/check.mjs "http://127.0.0.1:$port/graphql" "$token"
