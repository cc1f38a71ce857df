//! What operators see: request ids, `/metrics` moving with traffic and
//! refusals, and a shutdown that closes websockets with 1001 and exits.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Spawned, TestApp, Ws, free_port, graphql_ws, metric, test_config};

/// Whether the server ends the websocket session within 5 s.
async fn ends(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .unwrap_or(false)
}

async fn scrape(app: &TestApp) -> String {
    app.metrics().await
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let fresh = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    let id = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.len() >= 16, "{id}");
    let echoed = app
        .client
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-42");
    let odd = app
        .client
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "has spaces and {braces}")
        .send()
        .await
        .unwrap();
    assert_ne!(
        odd.headers()["x-request-id"],
        "has spaces and {braces}",
        "not echoed into logs"
    );
}

#[tokio::test]
async fn metrics_move_with_requests_and_refusals() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let before = scrape(&app).await;
    app.rest(reqwest::Method::GET, "/api/v1/printers/", Some(&token))
        .send()
        .await
        .unwrap();
    app.gql(Some(&token), "query Mine { printers { id } }", json!({}))
        .await;
    app.gql(None, "query Mine { printers { id } }", json!({}))
        .await;
    app.gql(
        Some(&token),
        "mutation { pausePrint(id: 999) { succeeded } }",
        json!({}),
    )
    .await;
    let after = scrape(&app).await;
    let grew = |prefix: &str| metric(&after, prefix) > metric(&before, prefix);
    assert!(
        grew(
            "printgate_requests_total{surface=\"rest\",operation=\"rest listPrinters\",outcome=\"ok\"}"
        ),
        "{after}"
    );
    assert!(
        grew(
            "printgate_requests_total{surface=\"graphql\",operation=\"graphql Mine\",outcome=\"ok\"}"
        ),
        "{after}"
    );
    assert!(grew(
        "printgate_graphql_errors_total{code=\"UNAUTHENTICATED\"}"
    ));
    assert!(grew("printgate_graphql_errors_total{code=\"NOT_FOUND\"}"));
    assert!(grew(
        "printgate_request_duration_seconds_count{surface=\"graphql\"}"
    ));
    for name in [
        "printgate_agent_connections",
        "printgate_subscriptions_active",
        "printgate_commands_total{delivered=\"false\"}",
        "printgate_rate_limited_total",
        "printgate_db_pool_connections{state=\"idle\"}",
    ] {
        assert!(after.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn shutdown_closes_agent_sockets_with_going_away_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path(),
        format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display()),
    );
    let app = printgate::Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let keys = printgate::auth::JwtKeys::from_secret(crate::helpers::SECRET.as_bytes());
    let token = keys.mint("alice", None, Duration::from_secs(60)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "mutation { createPrinter(input: {name: \"P\"}) { authToken } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = created["data"]["createPrinter"]["authToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut req = format!("{}/ws/dev/", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("bearer {auth}").parse().unwrap());
    let (mut agent, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    agent.next().await; // remote_status
    let mut sub = graphql_ws(&base, None).await;
    {
        use futures_util::SinkExt;
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        sub.send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        sub.next().await; // connection_ack
        let s = json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { printerUpdated { id } }"}});
        sub.send(Message::Text(s.to_string().into())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = agent.next().await {
            if let Message::Close(Some(f)) = m {
                return Some(u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1001));
    assert_eq!(
        crate::helpers::close_code(&mut sub, 5).await,
        Some(1001),
        "GraphQL websockets get a going-away close too"
    );
    let exited = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(
        exited.is_ok(),
        "the server exits once its sockets are closed"
    );
}

#[tokio::test]
async fn a_flooding_subscription_client_is_cut_off() {
    use futures_util::SinkExt;
    let app = TestApp::spawn().await;
    let mut ws = graphql_ws(&app.url, None).await;
    let ping = json!({"type": "ping"}).to_string();
    for _ in 0..200 {
        if ws.send(Message::Text(ping.clone().into())).await.is_err() {
            break;
        }
    }
    assert!(ends(&mut ws).await, "the session ended");
    let oversized = "x".repeat(128 * 1024);
    let mut ws = graphql_ws(&app.url, None).await;
    let _ = ws.send(Message::Text(oversized.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(
        ended.ok(),
        Some(true),
        "an oversized message ends the session"
    );
}

#[tokio::test]
async fn repeated_queries_never_show_stale_or_foreign_data() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let id = app.create_printer(&alice, "n0").await;
    app.create_printer(&bob, "Bob's").await;
    let list = "{ printers { name } }";
    let names = |v: &Value| v["data"]["printers"].clone();
    let hits = |m: &str| {
        m.lines()
            .find(|l| l.starts_with(r#"printgate_graphql_cache_requests_total{outcome="hit"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = hits(&app.metrics().await);
    for _ in 0..3 {
        assert_eq!(
            names(&app.gql(Some(&alice), list, json!({})).await),
            json!([{"name": "n0"}])
        );
        assert_eq!(
            names(&app.gql(Some(&bob), list, json!({})).await),
            json!([{"name": "Bob's"}]),
            "never another user's answer"
        );
    }
    assert!(
        hits(&app.metrics().await) >= before + 4,
        "repeated queries are answered from the cache"
    );
    // Every change shows on the very next query.
    for n in 1..=30 {
        let name = format!("n{n}");
        app.gql(
            Some(&alice),
            "mutation($id: ID!, $n: String!) { updatePrinter(id: $id, input: {name: $n}) { id } }",
            json!({"id": id, "n": name}),
        )
        .await;
        assert_eq!(
            names(&app.gql(Some(&alice), list, json!({})).await),
            json!([{"name": name}])
        );
    }
    // Variables are part of the question.
    let one = "query($id: ID!) { printer(id: $id) { name } }";
    let mine = app.gql(Some(&alice), one, json!({"id": id})).await;
    assert_eq!(mine["data"]["printer"]["name"], "n30");
    let missing = app.gql(Some(&alice), one, json!({"id": "999999"})).await;
    assert!(missing["data"]["printer"].is_null(), "{missing}");
    // An answer with errors is never kept: the next one is computed again.
    let bad = "{ printers { name nope } }";
    for _ in 0..2 {
        let r = app.gql(Some(&alice), bad, json!({})).await;
        assert!(r["errors"].is_array(), "{r}");
    }
    app.gql(
        Some(&alice),
        "mutation($id: ID!) { deletePrinter(id: $id) }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        names(&app.gql(Some(&alice), list, json!({})).await),
        json!([])
    );
}

#[tokio::test]
async fn the_demo_honours_cors_origins_and_public_url() {
    if std::env::var(crate::helpers::PG_ENV).is_ok_and(|u| !u.is_empty()) {
        return; // the demo runs on its own SQLite file: once per CI run
    }
    let (port, rx_port) = (free_port(), free_port());
    let demo = Spawned::start([
        "demo".to_owned(),
        "--bind".into(),
        format!("127.0.0.1:{port}"),
        "--cors-origins".into(),
        "http://localhost:5173".into(),
        "--public-url".into(),
        "http://farm.example:8080".into(),
        "--webhook-url".into(),
        format!("http://127.0.0.1:{rx_port}/"),
    ]);
    let graphiql = demo.line_where(60, |l| l.contains("/graphql#token="));
    let token = demo.line_where(60, |l| l.starts_with("eyJ"));
    assert!(
        graphiql.starts_with("http://farm.example:8080/graphql#token="),
        "the printed link uses --public-url"
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let preflight = c
        .request(reqwest::Method::OPTIONS, format!("{base}/graphql"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    // Snapshot links are absolute, under the public URL.
    let mut img = Value::Null;
    for _ in 0..60 {
        let b: Value = c
            .post(format!("{base}/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": "{ printers { pic { imgUrl } } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        img = b["data"]["printers"][0]["pic"]["imgUrl"].clone();
        if img.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(demo);
    assert!(
        img.as_str()
            .is_some_and(|u| u.starts_with("http://farm.example:8080/")),
        "{img}"
    );
}

/// `printgate <sub> --help` as a user reads it.
fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_printgate"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_subcommand_lists_only_the_flags_it_reads() {
    let serve = help(&["serve"]);
    for flag in [
        "--bind",
        "--database-url",
        "--jwt-jwks-url",
        "--max-query-depth",
        "--cors-origins",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}");
    }
    let simulate = help(&["simulate"]);
    for flag in [
        "--bind",
        "--database-url",
        "--max-query-depth",
        "--jwt-secret",
        "--cors-origins",
    ] {
        assert!(!simulate.contains(flag), "simulate --help lists {flag}");
    }
    assert!(simulate.contains("--printers") && simulate.contains("--subscribers"));
    let token = help(&["token"]);
    assert!(
        token.contains("--jwt-secret")
            && !token.contains("--jwt-jwks-url")
            && !token.contains("--bind")
    );
    let migrate = help(&["migrate"]);
    assert!(migrate.contains("--database-url") && !migrate.contains("--jwt-secret"));
    // The demo takes the server's flags but brings its own database.
    let demo = help(&["demo"]);
    assert!(demo.contains("--cors-origins") && demo.contains("--public-url"));
    assert!(
        !demo.contains("--database-url"),
        "demo --help lists --database-url"
    );
    let schema = help(&["schema"]);
    assert!(!schema.contains("--bind"));
    // Bare `printgate` serves, with the server's flags.
    assert!(help(&[]).contains("--max-query-depth"));
}
