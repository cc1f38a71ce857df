// A fleet dashboard in a terminal: the fleet's counts and its printers,
// one printer's history paged to the end, then live changes for a while.
// Usage: node dist/dashboard.js <printgate URL> <token> [seconds]
import { graphql } from "./gql/index.js";
import type { HistoryQuery as HistoryResult } from "./gql/graphql.js";
import { endpointFromArgs, makeClient } from "./client.js";

const FleetQuery = graphql(`
  query Fleet {
    fleet {
      id
      total
      online
      printing
      paused
      alerting
      finishingWithinHour
      byState {
        state
        count
      }
    }
    printers(orderBy: { field: NAME }) {
      id
      name
      state
      online
      lastSeenAt
      status {
        id
        progress {
          id
          completion
          printTimeLeft
        }
      }
    }
  }
`);

const HistoryQuery = graphql(`
  query History($printer: ID!, $after: String) {
    printer(id: $printer) {
      id
      prints(first: 5, after: $after) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        nodes {
          id
          filename
          state
          duration
          startedAt
        }
      }
    }
  }
`);

const Changes = graphql(`
  subscription Changes {
    printerChanged(minIntervalMs: 2000) {
      kind
      printerId
      printer {
        id
        state
        status {
          id
          progress {
            id
            completion
          }
        }
      }
    }
  }
`);

const endpoint = endpointFromArgs();
const seconds = Number(process.argv[4] ?? "5");
const client = makeClient(endpoint);

const { data } = await client.query({ query: FleetQuery });
if (!data) throw new Error("no fleet");
const f = data.fleet;
console.log(
  `fleet: ${f.total} printers, ${f.online} online, ${f.printing} printing, ${f.paused} paused, ${f.alerting} alerting, ${f.finishingWithinHour} finishing within the hour`,
);
for (const p of data.printers) {
  const done = p.status?.progress?.completion;
  console.log(`  ${p.name}: ${p.state}${done == null ? "" : ` ${done.toFixed(1)}%`}`);
}

const first = data.printers[0];
if (first) {
  let after: string | null = null;
  let seen = 0;
  let total = 0;
  do {
    const page: { data?: HistoryResult } = await client.query({
      query: HistoryQuery,
      variables: { printer: first.id, after },
    });
    const prints = page.data?.printer?.prints;
    if (!prints) break;
    total = prints.totalCount;
    seen += prints.nodes.length;
    after = prints.pageInfo.hasNextPage ? (prints.pageInfo.endCursor ?? null) : null;
  } while (after);
  console.log(`history of ${first.name}: ${seen} of ${total} prints paged`);
}

let changes = 0;
const sub = client.subscribe({ query: Changes }).subscribe({
  next: ({ data: change }) => {
    const c = change?.printerChanged;
    if (!c) return;
    changes += 1;
    const done = c.printer?.status?.progress?.completion;
    console.log(`  ${c.kind} ${c.printerId} ${c.printer?.state ?? ""} ${done == null ? "" : done.toFixed(1) + "%"}`);
  },
  error: (e: unknown) => console.error("subscription failed", e),
});
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
sub.unsubscribe();
console.log(`${changes} changes in ${seconds} s`);
client.stop();
process.exit(0);
