// The schema as a frontend team's tools see it:
//  1. schema.graphql is byte for byte graphql-js's printing of the live
//     endpoint's introspection (every option on: descriptions,
//     specifiedByURL, the schema's description, input value deprecation);
//  2. graphql-schema-linter passes (.graphql-schema-linterrc);
//  3. @graphql-eslint's schema-recommended passes (eslint.config.mjs).
// Usage: node check.mjs <graphql endpoint URL> <token>
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { buildClientSchema, getIntrospectionQuery, printSchema } from "graphql";

const [url, token] = process.argv.slice(2);
const schemaFile = new URL("../../schema.graphql", import.meta.url);

const res = await fetch(url, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
  body: JSON.stringify({
    query: getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    }),
  }),
});
const body = await res.json();
if (body.errors) throw new Error(JSON.stringify(body.errors));
const live = printSchema(buildClientSchema(body.data)) + "\n";
const committed = readFileSync(schemaFile, "utf8");
if (live !== committed) {
  const a = live.split("\n");
  const b = committed.split("\n");
  const i = a.findIndex((line, n) => line !== b[n]);
  console.error(`schema.graphql differs from the live introspection at line ${i + 1}:`);
  console.error(`  live:      ${JSON.stringify(a[i])}`);
  console.error(`  committed: ${JSON.stringify(b[i])}`);
  process.exit(1);
}
console.log("schema.graphql is the live introspection, byte for byte");

const root = new URL("../../", import.meta.url);
const bin = (name) => new URL(`node_modules/.bin/${name}`, import.meta.url).pathname;
const run = (cmd, args) => execFileSync(bin(cmd), args, { stdio: "inherit", cwd: root });
run("graphql-schema-linter", ["--config-directory", "tests/schema", "schema.graphql"]);
console.log("graphql-schema-linter: no findings");
run("eslint", ["--max-warnings", "0", "--config", "tests/schema/eslint.config.mjs", "schema.graphql"]);
console.log("@graphql-eslint schema-recommended: no findings");
