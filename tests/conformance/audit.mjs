// Runs the graphql-http server audits against a printgate URL; fails on any
// MUST failure and lists SHOULD misses (see docs/operations.md).
import { auditServer } from 'graphql-http';
const url = process.argv[2];
const results = await auditServer({ url });
let mustFail = 0, shouldMiss = 0;
for (const r of results) {
  if (r.status === 'ok') continue;
  const level = r.name.startsWith('MUST') ? 'MUST' : r.name.startsWith('SHOULD') ? 'SHOULD' : 'MAY';
  if (level === 'MUST') mustFail++;
  if (level === 'SHOULD') shouldMiss++;
  const reason = r.status === 'error' || r.status === 'warn' ? r.reason : '';
  console.log(`${r.status.toUpperCase()} ${r.name} :: ${reason}`);
}
console.log(`audits: ${results.length}, MUST failures: ${mustFail}, SHOULD misses: ${shouldMiss}`);
process.exit(mustFail ? 1 : 0);
