#!/usr/bin/env bash
# Refreshes the GraphiQL assets that printgate embeds in its binary, from the
# npm registry, at the versions pinned in src/graphql/playground/package.json
# (and locked in its package-lock.json). Rerun after changing a version there;
# commit the copied files with the lock file.
set -euo pipefail
cd "$(dirname "$0")/../src/graphql/playground"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
(cd "$work" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
m="$work/node_modules"
cp "$m/graphiql/graphiql.min.js" assets/graphiql.min.js
cp "$m/graphiql/graphiql.min.css" assets/graphiql.min.css
cp "$m/react/umd/react.production.min.js" assets/react.production.min.js
cp "$m/react-dom/umd/react-dom.production.min.js" assets/react-dom.production.min.js
cp "$m/graphql-ws/umd/graphql-ws.min.js" assets/graphql-ws.min.js
echo "GraphiQL assets updated:"; ls -la assets
