// @graphql-eslint's schema-recommended rules over schema.graphql, with the
// two adjustments docs/graphql.md explains ("Schema linting").
import graphqlPlugin from "@graphql-eslint/eslint-plugin";

export default [
  {
    files: ["**/*.graphql"],
    languageOptions: {
      parser: graphqlPlugin.parser,
      parserOptions: { graphQLConfig: { schema: "schema.graphql" } },
    },
    plugins: { "@graphql-eslint": graphqlPlugin },
    rules: {
      ...graphqlPlugin.configs["flat/schema-recommended"].rules,
      // Values with no identity of their own (pages, results, one-time
      // secrets, parts of a frame) carry no id; everything a client
      // caches does.
      "@graphql-eslint/strict-id-in-types": [
        "error",
        {
          exceptions: {
            suffixes: ["Connection", "Edge", "Result", "Change", "Count"],
            types: [
              "PageInfo",
              "CreatedApiKey",
              "WebhookWithSecret",
              "PrinterCredentials",
              "FailureDetection",
              "PredictionFrame",
              "TemperatureProfile",
            ],
          },
        },
      ],
      // `Print.printer` is a print's printer, not a prefixed name.
      "@graphql-eslint/no-typename-prefix": "off",
    },
  },
];
