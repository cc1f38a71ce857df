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
            ..Default::default()
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

#[tokio::test]
async fn a_flooding_user_gets_429_and_another_user_does_not() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits = printgate::ratelimit::RateLimits {
            per_second: 1.0,
            burst: 5.0,
            ..Default::default()
        };
    })
    .await;
    let flood = app.token("flood");
    let calm = app.token("calm");
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = app
            .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&flood))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["errors"][0]["extensions"]["code"], "RATE_LIMITED");
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "the burst is served");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The same caller is limited on GraphQL too; another user is not.
    let gql = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&flood)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(gql.status(), 429);
    let other = app.gql(Some(&calm), "{ me { id } }", json!({})).await;
    assert!(other["errors"].is_null(), "{other}");
    // Anonymous callers are limited by address, agents by their token.
    let agent = app
        .rest(reqwest::Method::GET, "/api/v1/octo/printer/", None)
        .header("authorization", "Token nope");
    assert_eq!(
        agent.send().await.unwrap().status(),
        401,
        "an agent token has its own bucket"
    );
}

#[tokio::test]
async fn an_oversized_graphql_body_gets_413_with_a_graphql_error() {
    let app = TestApp::spawn().await;
    let big = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let resp = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(app.token("alice"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(app.user_rows().await, 0, "nothing ran");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::spawn_with(None, |c| {
        c.cors_origins = vec!["https://app.example".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://app.example")
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let default = TestApp::spawn().await;
    let none = default
        .client
        .get(format!("{}/healthz", default.url))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(
        none.headers().get("access-control-allow-origin").is_none(),
        "nothing allowed by default"
    );
}

#[tokio::test]
async fn trusted_documents_mode_refuses_any_other_document() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("trusted.json");
    std::fs::write(
        &manifest,
        json!(["query Mine { printers { name } }"]).to_string(),
    )
    .unwrap();
    let path = manifest.clone();
    let app = TestApp::spawn_with(None, move |c| c.trusted_documents = Some(path)).await;
    let t = app.token("alice");
    let ok = app
        .gql(Some(&t), "query Mine { printers { name } }", json!({}))
        .await;
    assert_eq!(ok, json!({"data": {"printers": []}}));
    let resp = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&t)
        .json(&json!({"query": "mutation { createPrinter(input: {name: \"x\"}) { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_ALLOWED"
    );
    assert_eq!(app.printer_rows().await, 0, "nothing ran");
    // The REST paths run printgate's own documents and are unaffected.
    let rest = app
        .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 200);
}

#[tokio::test]
async fn a_2_mib_body_gets_413_on_the_agent_endpoints_too() {
    let app = TestApp::spawn().await;
    let t = app.token("alice");
    let auth = app
        .gql(
            Some(&t),
            "mutation { createPrinter(input: {name: \"P\"}) { authToken } }",
            json!({}),
        )
        .await["data"]["createPrinter"]["authToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let big = "x".repeat(2 * 1024 * 1024);
    let resp = app
        .rest(reqwest::Method::POST, "/api/v1/octo/g_code_files/", None)
        .header("authorization", format!("Token {auth}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("filename=a.gcode&url={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(
        entity::g_code_file::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .is_empty()
    );
}

use sea_orm::EntityTrait;
