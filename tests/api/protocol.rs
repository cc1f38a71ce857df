//! GraphQL over HTTP: GET for queries only, content types, error codes for
//! documents that do not parse or validate, and the browser's GraphiQL.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn get_runs_queries_with_the_standard_parameters() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let resp = app
        .client
        .get(format!("{}/graphql", app.url))
        .query(&[
            (
                "query",
                "query A { a: printers { id } } query B($id: ID!) { b: printer(id: $id) { name } }",
            ),
            ("operationName", "B"),
            ("variables", &json!({"id": id}).to_string()),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"data": {"b": {"name": "Prusa"}}}));
}

#[tokio::test]
async fn get_refuses_mutations_with_405_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let resp = app
        .client
        .get(format!("{}/graphql", app.url))
        .query(&[(
            "query",
            "mutation { createPrinter(input: {name: \"x\"}) { id } }",
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(app.printer_rows().await, 0);
    // Not told from its first word: a comment first, or a document whose
    // named operation is the mutation (the query beside it warmed first).
    let both =
        "query Q { printers { id } } mutation M { createPrinter(input: {name: \"x\"}) { id } }";
    let cases = [
        (
            "# hello\nmutation { createPrinter(input: {name: \"x\"}) { id } }",
            None,
        ),
        (both, Some("Q")),
        (both, Some("M")),
        (both, Some("M")),
    ];
    for (query, name) in cases {
        let mut params = vec![("query", query)];
        if let Some(n) = name {
            params.push(("operationName", n));
        }
        let resp = app
            .client
            .get(format!("{}/graphql", app.url))
            .query(&params)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let expected = if name == Some("Q") { 200 } else { 405 };
        assert_eq!(resp.status(), expected, "{query} {name:?}");
    }
    assert_eq!(app.printer_rows().await, 0, "nothing written by a GET");
}

#[tokio::test]
async fn a_browser_gets_graphiql() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("graphiql") || html.contains("GraphiQL"),
        "{html}"
    );
}

#[tokio::test]
async fn documents_that_do_not_parse_or_validate_get_apollo_codes() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let parse = app.gql(Some(&token), "{ printers { id ", json!({})).await;
    assert_eq!(error_code(&parse), "GRAPHQL_PARSE_FAILED");
    let invalid = app
        .gql(Some(&token), "{ printerz { id } }", json!({}))
        .await;
    assert_eq!(error_code(&invalid), "GRAPHQL_VALIDATION_FAILED");
    let unknown_op = app
        .client
        .post(format!("{}/graphql", app.url))
        .json(&json!({"query": "query A { me { id } }", "operationName": "B"}))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        error_code(&unknown_op),
        "GRAPHQL_VALIDATION_FAILED",
        "{unknown_op}"
    );
}

#[tokio::test]
async fn the_graphql_response_type_is_used_when_accepted() {
    let app = TestApp::spawn().await;
    let ok = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("accept", "application/graphql-response+json")
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        "application/graphql-response+json"
    );
    let bad = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("accept", "application/graphql-response+json")
        .json(&json!({"query": "{"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let plain = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("accept", "application/json")
        .json(&json!({"query": "{"}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn bodies_that_are_not_json_graphql_requests_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let form = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .bearer_auth(&token)
        .body("query=mutation{createPrinter(input:{name:\"x\"}){id}}")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let body: Value = form.json().await.unwrap();
    assert_eq!(error_code(&body), "UNSUPPORTED_MEDIA_TYPE");
    let broken = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("content-type", "application/json")
        .bearer_auth(&token)
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_REQUEST");
    assert_eq!(app.printer_rows().await, 0);
}

#[tokio::test]
async fn batches_run_each_operation_as_the_same_user() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let resp = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&token)
        .json(&json!([
            {"query": "mutation { createPrinter(input: {name: \"one\"}) { name } }"},
            {"query": "{ me { id } }"}
        ]))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body[0]["data"]["createPrinter"]["name"], "one", "{body}");
    assert!(body[1]["data"]["me"]["id"].is_string(), "{body}");
}

#[tokio::test]
async fn healthz_answers() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn persisted_queries_register_then_run_by_hash_over_get_and_post() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.create_printer(&token, "Prusa").await;
    let query = "{ printers { name } }";
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}});
    let get = |ext: &Value| {
        app.client
            .get(format!("{}/graphql", app.url))
            .query(&[("extensions", ext.to_string())])
            .bearer_auth(&token)
            .send()
    };
    let unknown: Value = get(&ext).await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&unknown), "PERSISTED_QUERY_NOT_FOUND");
    let registered: Value = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&token)
        .json(&json!({"query": query, "extensions": ext}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registered["data"]["printers"][0]["name"], "Prusa");
    let by_get: Value = get(&ext).await.unwrap().json().await.unwrap();
    assert_eq!(by_get, json!({"data": {"printers": [{"name": "Prusa"}]}}));
    let by_post: Value = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&token)
        .json(&json!({"extensions": ext}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_post, by_get);
    let wrong =
        json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex("{ me { id } }")}});
    let mismatch = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&token)
        .json(&json!({"query": query, "extensions": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);
}

#[tokio::test]
async fn a_persisted_mutation_is_still_refused_over_get() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let mutation = "mutation { createPrinter(input: {name: \"via GET\"}) { id } }";
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(mutation)}});
    // Registering over POST runs it once, as the protocol says.
    app.client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&token)
        .json(&json!({"query": mutation, "extensions": ext}))
        .send()
        .await
        .unwrap();
    assert_eq!(app.printer_rows().await, 1);
    let resp = app
        .client
        .get(format!("{}/graphql", app.url))
        .query(&[("extensions", ext.to_string())])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(app.printer_rows().await, 1, "nothing written by the GET");
}
