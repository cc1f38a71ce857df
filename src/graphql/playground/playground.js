// printgate's GraphiQL set-up: queries over POST /graphql, subscriptions over
// /graphql/ws (graphql-transport-ws), both with the Authorization header from
// the Headers tab. A token in the URL fragment (#token=...) pre-fills it, as
// `printgate demo` prints; `#query=...` pre-fills the editor.
(function () {
  'use strict';
  var params = new URLSearchParams(location.hash.slice(1));
  var token = params.get('token');
  var defaultHeaders = JSON.stringify(
    { Authorization: 'Bearer ' + (token || '<paste a token from: printgate token --sub you>') },
    null,
    2
  );
  var defaultQuery = params.get('query') || [
    '# printgate: a GraphQL gateway for your 3D printers.',
    '#',
    '# 1. Mint a token:    printgate token --sub you@example.com',
    '# 2. Put it in the Headers tab below: {"Authorization": "Bearer <token>"}',
    '# 3. Run this query (Ctrl-Enter). For live updates, try:',
    '#    subscription { printerUpdated { id name status { progress { completion } } } }',
    '',
    'query Printers {',
    '  printers {',
    '    id',
    '    name',
    '    status { state { text } progress { completion } temperatures { name actual target } }',
    '    currentPrint { filename startedAt }',
    '    notWatchingReason',
    '  }',
    '}',
    ''
  ].join('\n');

  var wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws';
  var clients = {};
  function wsClient(authorization) {
    if (!clients[authorization]) {
      clients[authorization] = graphqlWs.createClient({
        url: wsUrl,
        lazy: true,
        connectionParams: authorization ? { Authorization: authorization } : {}
      });
    }
    return clients[authorization];
  }

  function isSubscription(query, operationName) {
    var re = /(^|[}\s])subscription\b\s*(\w*)/g;
    var m;
    while ((m = re.exec(query.replace(/#.*$/gm, ''))) !== null) {
      if (!operationName || m[2] === operationName) return true;
    }
    return false;
  }

  function fetcher(graphQLParams, opts) {
    var headers = Object.assign(
      { 'Content-Type': 'application/json', Accept: 'application/json' },
      (opts && opts.headers) || {}
    );
    if (isSubscription(graphQLParams.query || '', graphQLParams.operationName)) {
      var client = wsClient(headers.Authorization || headers.authorization || '');
      return {
        subscribe: function (observer) {
          var dispose = client.subscribe(graphQLParams, {
            next: function (v) { observer.next(v); },
            error: function (e) { observer.error(e); },
            complete: function () { observer.complete(); }
          });
          return { unsubscribe: dispose };
        }
      };
    }
    return fetch('/graphql', {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(graphQLParams)
    }).then(function (r) { return r.json(); });
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      shouldPersistHeaders: false,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers'
    })
  );
})();
