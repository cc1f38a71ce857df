// GraphQL Code Generator: typed documents for every `graphql(...)` in src,
// checked against the repository's schema.graphql (a schema change that
// breaks this client fails `npm run build`, and so CI).
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.ts", "!src/gql/**"],
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        scalars: { DateTime: "string", JSON: "unknown" },
        enumsAsTypes: true,
        useTypeImports: true,
      },
    },
  },
  ignoreNoDocuments: false,
  // ES module imports with their `.js` extension (NodeNext resolution).
  emitLegacyCommonJSImports: false,
};

export default config;
