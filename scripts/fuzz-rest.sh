#!/usr/bin/env bash
# Fuzzes the REST paths with schemathesis against a running printgate, using
# the OpenAPI document printgate serves. Fails on any 5xx or any response
# that breaks its declared schema.
#
# Usage: scripts/fuzz-rest.sh [MAX_EXAMPLES]   (default 100 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-100}
venv=${PRINTGATE_TOOLS_VENV:-target/tools-venv}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi

cargo build --quiet
work=$(mktemp -d)
port=${PRINTGATE_FUZZ_PORT:-18080}
export PRINTGATE_JWT_SECRET=fuzz-secret
export PRINTGATE_DATABASE_URL="sqlite://$work/fuzz.db?mode=rwc"
export PRINTGATE_BIND="127.0.0.1:$port"
# The fuzzer checks behaviour, not the rate limiter (its 429 is documented).
export PRINTGATE_RATE_LIMIT=0
target/debug/printgate serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done

token=$(target/debug/printgate token --sub fuzzer --ttl 2h)
# A few printers so that ids 1..3 exist for the fuzzer to find.
for name in one two three; do
  curl -sf -X POST "http://127.0.0.1:$port/api/v1/printers/" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"name\": \"$name\"}" >/dev/null
done

"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
  --max-examples "$examples" --seed 1 --workers 1 \
  --suppress-health-check all
status=$?
if grep -q "ERROR" "$work/server.log"; then
  echo "server logged errors:"; grep "ERROR" "$work/server.log" | head -20
  exit 1
fi
exit $status
