#!/usr/bin/env bash
# The example dashboard client (examples/dashboard: GraphQL Code Generator,
# Apollo Client, graphql-ws): generated and type-checked against
# schema.graphql, then run against a live printgate with four simulated
# printers: the Apollo refetch check (exactly one HTTP request over 5 s of
# partial subscription updates), then the dashboard itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin printgate
work=$(mktemp -d)
port=${PRINTGATE_DASHBOARD_PORT:-18891}
url="http://127.0.0.1:$port"
PRINTGATE_JWT_SECRET=dashboard PRINTGATE_RATE_LIMIT=0 PRINTGATE_BIND="127.0.0.1:$port" \
  PRINTGATE_DATABASE_URL="sqlite://$work/dashboard.db?mode=rwc" target/debug/printgate serve >"$work/server.log" 2>&1 &
server=$!
sim=
trap 'kill $server $sim 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.2; done
token=$(PRINTGATE_JWT_SECRET=dashboard target/debug/printgate token --sub dashboard)
(cd examples/dashboard && npm ci --no-audit --no-fund --silent && npm run --silent build)
target/debug/printgate simulate --url "$url" --printers 4 --jwt "$token" --interval 500ms \
  --speed 2 --no-snapshots >"$work/simulate.log" 2>&1 &
sim=$!
# The simulator has created its printers and they report.
for _ in $(seq 50); do
  n=$(curl -sf "$url/graphql" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"query":"{ fleet { online } }"}' | grep -o '"online":[0-9]*' | cut -d: -f2 || true)
  [ "${n:-0}" = 4 ] && break
  sleep 0.2
done
(cd examples/dashboard && node dist/refetch-check.js "$url" "$token" && node dist/dashboard.js "$url" "$token" 3)
