// The check CI runs: a list query watched by Apollo Client while a
// subscription delivers partial printers. Every cached part of a printer
// has an id, so the partial data merges into the list's and Apollo never
// refetches: exactly one HTTP request over 5 s of updates.
// Usage: node dist/refetch-check.js <printgate URL> <token>
import { graphql } from "./gql/index.js";
import { endpointFromArgs, makeClient } from "./client.js";

const List = graphql(`
  query DashboardList {
    printers {
      id
      name
      state
      online
      status {
        id
        state {
          id
          text
          flags {
            id
            printing
            paused
          }
        }
        progress {
          id
          completion
          printTimeLeft
        }
        job {
          id
          filename
        }
        temperatures {
          id
          name
          actual
          target
        }
      }
      settings {
        id
        webcamRotation
      }
    }
  }
`);

// A partial selection of the same objects.
const Partial = graphql(`
  subscription PartialChanges {
    printerChanged {
      kind
      printer {
        id
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

let requests = 0;
const counting: typeof fetch = (input, init) => {
  requests += 1;
  return fetch(input, init);
};
const client = makeClient(endpointFromArgs(), counting);

let emissions = 0;
let lastCompletions = "";
const watched = client.watchQuery({ query: List }).subscribe({
  next: ({ data }) => {
    if (!data || !("printers" in data) || !data.printers) return;
    emissions += 1;
    lastCompletions = data.printers
      .map((p) => p.status?.progress?.completion?.toFixed(1) ?? "-")
      .join(" ");
  },
});
let updates = 0;
const sub = client.subscribe({ query: Partial }).subscribe({
  next: ({ data }) => {
    if (data?.printerChanged.kind === "UPDATED") updates += 1;
  },
});
await new Promise((resolve) => setTimeout(resolve, 5000));
watched.unsubscribe();
sub.unsubscribe();
client.stop();
console.log(
  `${requests} HTTP request(s), ${updates} partial updates received, the list emitted ${emissions} times (completions now: ${lastCompletions})`,
);
if (updates < 5) {
  console.error("too few updates arrived to show anything: is an agent live?");
  process.exit(1);
}
if (emissions < 2) {
  console.error("the list never saw the subscription's data");
  process.exit(1);
}
if (requests !== 1) {
  console.error(`Apollo refetched the list: ${requests} requests instead of 1`);
  process.exit(1);
}
process.exit(0);
