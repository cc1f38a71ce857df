//! `schema.graphql` must equal what `printgate schema` prints (graphql-js's
//! printing of the live introspection; CI also checks it against graphql-js
//! itself). When it is stale this test rewrites it and fails, so the fix is
//! to commit the file. The schema's own rules are checked here too: every
//! type, field, argument and enum value described, no description
//! hard-wrapped.

use std::path::Path;

#[tokio::test]
async fn schema_graphql_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let actual = printgate::graphql::sdl().await;
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != actual {
        std::fs::write(&path, &actual).unwrap();
        panic!("schema.graphql was stale and has been rewritten; review and commit it");
    }
}

#[tokio::test]
async fn the_schema_builds_and_names_every_root() {
    let sdl = printgate::graphql::sdl().await;
    for needle in [
        "type Query",
        "type Mutation",
        "scalar DateTime",
        "enum AlertOverwrite",
    ] {
        assert!(sdl.contains(needle), "{needle} missing");
    }
}

/// Every description of the live schema, with where it is.
async fn descriptions() -> Vec<(String, Option<String>)> {
    let schema = printgate::graphql::build_schema(
        std::sync::Arc::new(printgate::urls::UrlSigner::new(Vec::new(), "")),
        printgate::graphql::SchemaOptions::default(),
    );
    let data = schema
        .execute(printgate::graphql::sdl::INTROSPECTION_QUERY)
        .await
        .data
        .into_json()
        .unwrap();
    let text = |v: &serde_json::Value| v["description"].as_str().map(str::to_owned);
    let mut out = vec![("schema".to_owned(), text(&data["__schema"]))];
    for t in data["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        if name.starts_with("__") || ["String", "Int", "Float", "Boolean", "ID"].contains(&name) {
            continue;
        }
        out.push((name.to_owned(), text(t)));
        for key in ["fields", "inputFields", "enumValues"] {
            for f in t[key].as_array().into_iter().flatten() {
                let field = format!("{name}.{}", f["name"].as_str().unwrap());
                for a in f["args"].as_array().into_iter().flatten() {
                    out.push((format!("{field}({})", a["name"].as_str().unwrap()), text(a)));
                }
                out.push((field, text(f)));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_type_field_argument_and_value_is_described_on_one_line() {
    let all = descriptions().await;
    assert!(all.len() > 300, "only {} described items found", all.len());
    let missing: Vec<&str> = all
        .iter()
        .filter(|(_, d)| d.as_deref().is_none_or(|d| d.trim().is_empty()))
        .map(|(w, _)| w.as_str())
        .collect();
    assert!(missing.is_empty(), "no description: {missing:?}");
    // GraphiQL shows a description's newlines: a hard-wrapped one breaks
    // mid-sentence.
    let wrapped: Vec<&str> = all
        .iter()
        .filter(|(_, d)| d.as_deref().is_some_and(|d| d.contains('\n')))
        .map(|(w, _)| w.as_str())
        .collect();
    assert!(wrapped.is_empty(), "hard-wrapped: {wrapped:?}");
    let schema = &all[0].1;
    assert!(
        schema
            .as_deref()
            .is_some_and(|d| d.starts_with("printgate")),
        "__schema.description is {schema:?}"
    );
}
