// The Apollo Client a dashboard uses: queries and mutations over HTTP,
// subscriptions over graphql-ws, one normalised cache (every object
// printgate returns that a cache keeps has an `id`, so no type policies
// are needed). `fetch` is injectable so a check can count requests.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { isSubscriptionOperation } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

export interface Endpoint {
  /** The server's origin, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** A bearer token (`printgate token --sub you`) or an API key. */
  token: string;
}

export function makeClient(endpoint: Endpoint, fetchImpl: typeof fetch = fetch): ApolloClient {
  const http = new HttpLink({
    uri: `${endpoint.url}/graphql`,
    headers: { authorization: `Bearer ${endpoint.token}` },
    fetch: fetchImpl,
  });
  const ws = new GraphQLWsLink(
    createClient({
      url: `${endpoint.url.replace(/^http/, "ws")}/graphql/ws`,
      connectionParams: { Authorization: `Bearer ${endpoint.token}` },
      webSocketImpl: WebSocket,
    }),
  );
  return new ApolloClient({
    link: ApolloLink.split((op) => isSubscriptionOperation(op.query), ws, http),
    cache: new InMemoryCache(),
  });
}

export function endpointFromArgs(): Endpoint {
  const [url, token] = process.argv.slice(2);
  if (!url || !token) {
    console.error("usage: node dist/<script>.js <printgate URL> <token>");
    process.exit(2);
  }
  return { url, token };
}
