#!/usr/bin/env bash
# Runs the GraphQL-over-HTTP conformance audits (npm graphql-http, pinned in
# tests/conformance) against a printgate on a scratch database. Fails on any
# MUST failure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin printgate
work=$(mktemp -d)
port=${PRINTGATE_AUDIT_PORT:-18889}
PRINTGATE_JWT_SECRET=audit PRINTGATE_RATE_LIMIT=0 PRINTGATE_BIND="127.0.0.1:$port" \
  PRINTGATE_DATABASE_URL="sqlite://$work/audit.db?mode=rwc" target/debug/printgate serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
(cd tests/conformance && npm ci --no-audit --no-fund --silent && node audit.mjs "http://127.0.0.1:$port/graphql")
