//! Query limits refuse before anything executes, naming the limit and its
//! value; a query just under each limit runs. Production mode turns off
//! introspection, suggestions and GraphiQL, and requires a configured secret.

use printgate::graphql::limits::Limits;
use serde_json::{Value, json};

use crate::helpers::{TestApp, test_config};

async fn small_limits() -> TestApp {
    TestApp::spawn_with(None, |c| {
        c.schema.limits = Limits {
            depth: 4,
            complexity: 100,
            aliases: 2,
            root_fields: 3,
            tokens: 60,
            batch: 2,
        };
    })
    .await
}

fn refused(body: &Value, code: &str, limit: u64) {
    assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], limit, "{body}");
    assert!(body["data"].is_null(), "nothing executed: {body}");
}

#[tokio::test]
async fn each_limit_refuses_just_over_it_and_allows_just_under_it() {
    let app = small_limits().await;
    let t = app.token("alice");
    let ok = |b: &Value| assert!(b["errors"].is_null(), "{b}");

    ok(&app
        .gql(
            Some(&t),
            "{ printers { status { state { text } } } }",
            json!({}),
        )
        .await);
    refused(
        &app.gql(
            Some(&t),
            "{ printers { status { state { flags { printing } } } } }",
            json!({}),
        )
        .await,
        "QUERY_TOO_DEEP",
        4,
    );

    ok(&app
        .gql(Some(&t), "{ printers { id name } }", json!({}))
        .await);
    refused(
        &app.gql(
            Some(&t),
            "{ printers { id name createdAt authToken watchingEnabled normalizedP } }",
            json!({}),
        )
        .await,
        "QUERY_TOO_COMPLEX",
        100,
    );

    ok(&app
        .gql(Some(&t), "{ a: me { id } b: me { id } }", json!({}))
        .await);
    refused(
        &app.gql(
            Some(&t),
            "{ a: me { id } b: me { id } c: me { id } }",
            json!({}),
        )
        .await,
        "TOO_MANY_ALIASES",
        2,
    );

    ok(&app
        .gql(
            Some(&t),
            "{ me { id } __typename x: __typename }",
            json!({}),
        )
        .await);
    refused(
        &app.gql(
            Some(&t),
            "{ me { id } __typename printers { id } y: printer(id: 1) { id } }",
            json!({}),
        )
        .await,
        "TOO_MANY_ROOT_FIELDS",
        3,
    );

    let long = format!("{{ me {{ id {} }} }}", "email ".repeat(60));
    refused(
        &app.gql(Some(&t), &long, json!({})).await,
        "QUERY_TOO_LARGE",
        60,
    );

    let batch = |n: usize| {
        let ops: Vec<Value> = (0..n).map(|_| json!({"query": "{ me { id } }"})).collect();
        app.client
            .post(format!("{}/graphql", app.url))
            .bearer_auth(&t)
            .json(&ops)
            .send()
    };
    let two: Value = batch(2).await.unwrap().json().await.unwrap();
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    let three = batch(3).await.unwrap();
    assert_eq!(three.status(), 400);
    refused(&three.json::<Value>().await.unwrap(), "BATCH_TOO_LARGE", 2);
}

#[tokio::test]
async fn a_refused_mutation_writes_nothing() {
    let app = small_limits().await;
    let t = app.token("alice");
    let body = app
        .gql(
            Some(&t),
            "mutation { a: createPrinter(input: {name: \"1\"}) { id } b: createPrinter(input: {name: \"2\"}) { id } c: createPrinter(input: {name: \"3\"}) { id } }",
            json!({}),
        )
        .await;
    refused(&body, "TOO_MANY_ALIASES", 2);
    assert_eq!(app.printer_rows().await, 0);
}

#[tokio::test]
async fn the_default_limits_let_printgates_own_clients_through() {
    // The REST documents (about 50 aliases) and GraphiQL's introspection
    // run under the defaults; the REST tests cover the former.
    let app = TestApp::spawn().await;
    let introspection = app
        .gql(
            None,
            "{ __schema { types { name fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }",
            json!({}),
        )
        .await;
    assert!(introspection["errors"].is_null(), "{introspection}");
}

#[tokio::test]
async fn production_mode_turns_off_introspection_suggestions_and_graphiql() {
    let app = TestApp::spawn_with(None, |c| {
        c.schema.introspection = false;
        c.graphiql = false;
        c.jwt.production = true;
    })
    .await;
    let t = app.token("alice");
    let body = app
        .gql(
            Some(&t),
            "{ __schema { queryType { name } } __type(name: \"Printer\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["__schema"],
        Value::Null,
        "introspection answers nothing: {body}"
    );
    assert_eq!(body["data"]["__type"], Value::Null, "{body}");
    let typo = app.gql(Some(&t), "{ printerz { id } }", json!({})).await;
    assert!(!typo.to_string().contains("Did you mean"), "{typo}");
    let page = app
        .client
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400, "no GraphiQL");
    let ok = app.gql(Some(&t), "{ me { id } }", json!({})).await;
    assert!(ok["errors"].is_null(), "{ok}");
}

#[tokio::test]
async fn production_mode_requires_a_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(
        dir.path(),
        format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display()),
    );
    config.jwt.secret = None;
    config.jwt.production = true;
    let err = printgate::Application::build(config)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.unwrap_or_default()
            .contains("PRINTGATE_JWT_SECRET is required")
    );
    assert!(
        !dir.path().join("secret").exists(),
        "no development secret was generated"
    );
}
