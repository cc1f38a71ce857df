//! API keys: created once and stored hashed, accepted as `X-Api-Key` and as
//! `Authorization: Bearer` on REST, GraphQL and the websocket, scoped
//! (READ refused on mutations, no key manages keys or webhooks), revoked at
//! once here and within a second on another instance, expiring, capped,
//! and rate-limited per key.

use std::time::Duration;

use reqwest::Method;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, graphql_ws, ws_next_json, ws_send};

const CREATE: &str = "mutation($n: String!, $s: ApiKeyScope!, $e: DateTime) {
  createApiKey(input: {name: $n, scope: $s, expiresAt: $e}) {
    key apiKey { id name scope prefix createdAt lastUsedAt expiresAt revokedAt }
  }
}";

/// Creates a key as `token`'s user; returns (id, key).
async fn new_key(app: &TestApp, token: &str, scope: &str) -> (String, String) {
    let body = app
        .gql(Some(token), CREATE, json!({"n": "script", "s": scope}))
        .await;
    let created = &body["data"]["createApiKey"];
    let key = created["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key: {body}"))
        .to_owned();
    (created["apiKey"]["id"].as_str().unwrap().to_owned(), key)
}

/// A GraphQL operation with an `X-Api-Key` header.
async fn with_key(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(format!("{}/graphql", app.url))
        .header("x-api-key", key)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_is_shown_once_stored_hashed_and_works_on_rest_and_graphql() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    app.create_printer(&alice, "Alice's MK4").await;
    app.create_printer(&app.token("bob"), "Bob's").await;
    let body = app
        .gql(
            Some(&alice),
            CREATE,
            json!({"n": "home assistant", "s": "READ"}),
        )
        .await;
    let key = body["data"]["createApiKey"]["key"].as_str().unwrap();
    let record = &body["data"]["createApiKey"]["apiKey"];
    assert!(key.starts_with("pgk_") && key.len() > 40, "{key}");
    assert_eq!(record["scope"], "READ");
    assert_eq!(record["name"], "home assistant");
    assert!(key.starts_with(record["prefix"].as_str().unwrap()));
    assert!(record["prefix"].as_str().unwrap().len() < key.len() / 2);

    // The database holds a hash, never the key.
    let rows = entity::api_key::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    let stored = format!("{:?}", rows[0]);
    assert!(!stored.contains(key), "the key itself is stored: {stored}");
    assert_eq!(rows[0].key_hash.len(), 64);

    // REST with X-Api-Key, and with Bearer: only Alice's printers.
    for req in [
        app.rest(Method::GET, "/api/v1/printers/", None)
            .header("x-api-key", key),
        app.rest(Method::GET, "/api/v1/printers/", Some(key)),
        app.rest(Method::GET, "/api/v1/printers/", None)
            .header("authorization", format!("Token {key}")),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().await.unwrap();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Alice's MK4"]);
    }
    // GraphQL with Bearer.
    let me = app.gql(Some(key), "{ printers { name } }", json!({})).await;
    assert_eq!(me["data"]["printers"][0]["name"], "Alice's MK4");
    // The listing never shows the key, and records the use.
    let listed = app
        .gql(Some(&alice), "{ apiKeys { prefix lastUsedAt } }", json!({}))
        .await;
    assert!(!listed.to_string().contains(key));
    assert!(
        listed["data"]["apiKeys"][0]["lastUsedAt"].is_string(),
        "{listed}"
    );
}

#[tokio::test]
async fn a_read_key_cannot_write_and_no_key_manages_keys_or_webhooks() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let id = app.create_printer(&alice, "P1").await;
    let (_, read) = new_key(&app, &alice, "READ").await;
    let (_, write) = new_key(&app, &alice, "WRITE").await;

    let create = "mutation { createPrinter(input: {name: \"by key\"}) { id } }";
    let refused = with_key(&app, &read, create, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_eq!(
        app.printer_rows().await,
        1,
        "a refused mutation wrote nothing"
    );
    let resp = app
        .rest(
            Method::PATCH,
            &format!("/api/v1/printers/{id}/"),
            Some(&read),
        )
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(app.stored_printer(&id).await.name, "P1");

    let made = with_key(&app, &write, create, json!({})).await;
    assert!(made["data"]["createPrinter"]["id"].is_string(), "{made}");
    assert_eq!(app.printer_rows().await, 2);

    let keys_before = entity::api_key::Entity::find()
        .count(&app.db)
        .await
        .unwrap();
    for key in [&read, &write] {
        for op in [
            "{ apiKeys { id } }",
            "{ webhooks { id } }",
            "mutation { createApiKey(input: {name: \"x\", scope: WRITE}) { key } }",
            "mutation { createWebhook(input: {url: \"http://127.0.0.1:9/\", events: [PRINT_STARTED]}) { secret } }",
        ] {
            let body = with_key(&app, key, op, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{op}: {body}");
        }
    }
    assert_eq!(
        entity::api_key::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        keys_before
    );
    assert_eq!(
        entity::webhook::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_here_at_once_and_on_another_instance_within_a_second() {
    let a = TestApp::spawn().await;
    // (On SQLite two instances never share a database in production;
    // here they do, so the test runs on both backends.)
    let b = TestApp::spawn_on(Some(a.database_url.clone())).await;
    let alice = a.token("alice");
    let (id, key) = new_key(&a, &alice, "READ").await;
    let q = "{ me { id } }";
    // Both instances accept it (and B has it verified in memory).
    assert!(with_key(&a, &key, q, json!({})).await["data"]["me"].is_object());
    assert!(with_key(&b, &key, q, json!({})).await["data"]["me"].is_object());
    let revoked = a
        .gql(
            Some(&alice),
            "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({"id": id}),
        )
        .await;
    assert!(
        revoked["data"]["revokeApiKey"]["revokedAt"].is_string(),
        "{revoked}"
    );
    let here = with_key(&a, &key, q, json!({})).await;
    assert_eq!(error_code(&here), "UNAUTHENTICATED");
    let started = std::time::Instant::now();
    loop {
        let there = with_key(&b, &key, q, json!({})).await;
        if there["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the other instance still accepts a revoked key: {there}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // REST says 401.
    let resp = b
        .rest(Method::GET, "/api/v1/printers/", None)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn keys_expire_are_capped_and_are_checked_on_the_websocket() {
    let app = TestApp::spawn_with(None, |c| c.guards.max_api_keys_per_user = 2).await;
    let alice = app.token("alice");
    let past = app
        .gql(
            Some(&alice),
            CREATE,
            json!({"n": "old", "s": "READ", "e": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(error_code(&past), "BAD_USER_INPUT");
    let (_, key) = new_key(&app, &alice, "READ").await;
    new_key(&app, &alice, "READ").await;
    let third = app
        .gql(Some(&alice), CREATE, json!({"n": "third", "s": "READ"}))
        .await;
    assert_eq!(error_code(&third), "API_KEY_LIMIT_REACHED", "{third}");
    assert_eq!(
        entity::api_key::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        2
    );

    // The websocket takes the key in connection_init.
    let mut ws = graphql_ws(&app.url, None).await;
    ws_send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"X-Api-Key": key}}),
    )
    .await;
    assert_eq!(ws_next_json(&mut ws).await["type"], "connection_ack");
    let mut ws = graphql_ws(&app.url, None).await;
    ws_send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}x")}}),
    )
    .await;
    let code = crate::helpers::close_code(&mut ws, 5).await;
    assert_eq!(code, Some(4403));

    // An expired key is refused with the reason.
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};
    entity::api_key::Entity::update_many()
        .col_expr(
            entity::api_key::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(5)),
        )
        .filter(entity::api_key::Column::Prefix.is_not_null())
        .exec(&app.db)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let body = with_key(&app, &key, "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_second = 0.01;
        c.rate_limits.burst = 3.0;
    })
    .await;
    let alice = app.token("alice");
    let (_, one) = new_key(&app, &alice, "READ").await;
    let (_, two) = new_key(&app, &alice, "READ").await;
    let status = |key: String| {
        let req = app
            .rest(Method::GET, "/api/v1/printers/", None)
            .header("x-api-key", key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(status(one.clone()).await);
    }
    assert_eq!(seen, [200, 200, 200, 429, 429]);
    assert_eq!(status(two.clone()).await, 200, "another key is not charged");
}

#[tokio::test]
async fn reads_by_key_are_kept_but_never_stale_or_another_users() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let id = app.create_printer(&alice, "Before").await;
    app.create_printer(&app.token("bob"), "Bob's").await;
    let (_, key) = new_key(&app, &alice, "READ").await;
    let (_, bobs) = new_key(&app, &app.token("bob"), "READ").await;
    let rest_names = |k: String| {
        let req = app
            .rest(Method::GET, "/api/v1/printers/", None)
            .header("x-api-key", k);
        async move {
            let list: Value = req.send().await.unwrap().json().await.unwrap();
            list.as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let gql_names = |k: String| {
        let app = &app;
        async move {
            let b = with_key(app, &k, "{ printers { name } }", json!({})).await;
            b["data"]["printers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    for _ in 0..3 {
        assert_eq!(rest_names(key.clone()).await, ["Before"]);
        assert_eq!(gql_names(key.clone()).await, ["Before"]);
        assert_eq!(rest_names(bobs.clone()).await, ["Bob's"]);
        assert_eq!(gql_names(bobs.clone()).await, ["Bob's"]);
    }
    // The owner renames it with the session token: the key sees it at once.
    let resp = app
        .rest(
            Method::PATCH,
            &format!("/api/v1/printers/{id}/"),
            Some(&alice),
        )
        .json(&json!({"name": "After"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(rest_names(key.clone()).await, ["After"]);
    assert_eq!(gql_names(key.clone()).await, ["After"]);
    // A key never gets the owner's answers about keys.
    let body = with_key(&app, &key, "{ apiKeys { id } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let _ = app.gql(Some(&alice), "{ apiKeys { id } }", json!({})).await;
    let body = with_key(&app, &key, "{ apiKeys { id } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
}
