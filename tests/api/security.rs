//! Attacks from the security review (issue 11), each tried against the real
//! server and shown to fail: rate-limit bypasses, cache and label floods,
//! stale reads, transport bypasses, credential checks, disk and connection
//! exhaustion.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn junk_credentials_meet_429_instead_of_fresh_buckets() {
    let app = TestApp::spawn().await;
    let mut statuses = Vec::new();
    for n in 0..40 {
        let r = app
            .client
            .post(format!("{}/graphql", app.url))
            .bearer_auth(format!("junk{n}"))
            .json(&json!({"query": "{ me { id } }"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 15, "junk tokens were refused: {statuses:?}");
    // Agents' junk tokens count against the address too.
    let mut agent = Vec::new();
    for n in 0..40 {
        let r = app
            .rest(reqwest::Method::GET, "/api/v1/octo/printer/", None)
            .header("authorization", format!("Token junk{n}"))
            .send()
            .await
            .unwrap();
        agent.push(r.status().as_u16());
    }
    assert!(agent.iter().all(|s| *s == 429), "{agent:?}");
    // A verified user from the same address is still served.
    let ok = app
        .gql(Some(&app.token("alice")), "{ me { id } }", json!({}))
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
}

#[tokio::test]
async fn one_user_is_one_bucket_whatever_tokens_it_mints() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_second = 0.5;
        c.rate_limits.burst = 5.0;
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..10u64 {
        // A new token each time (distinct `exp`), naming the same user.
        let t = app
            .keys
            .mint("flood", None, Duration::from_secs(3600 + n))
            .unwrap();
        let r = app
            .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&t))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn the_address_bucket_holds_for_anonymous_callers_and_ignores_spoofed_forwarding() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_address_per_second = 0.5;
        c.rate_limits.per_address_burst = 5.0;
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..10 {
        // Not from a trusted proxy: the header must not pick the bucket.
        let r = app
            .client
            .get(format!("{}/healthz", app.url))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_address_per_second = 0.5;
        c.rate_limits.per_address_burst = 3.0;
        c.rate_limits.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let get = |ip: &'static str| {
        app.client
            .get(format!("{}/healthz", app.url))
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(get("198.51.100.1").await.unwrap().status(), 200);
    }
    assert_eq!(get("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(get("198.51.100.2").await.unwrap().status(), 200);
}

/// A gauge or counter's value in a metrics text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics"))
}

#[tokio::test]
async fn client_operation_names_never_become_labels_and_metrics_stay_small() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(200_000);
    for n in 0..30 {
        let r = app
            .client
            .post(format!("{}/graphql", app.url))
            .json(&json!({"query": "{ me { id } }", "operationName": format!("{huge}{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let token = app.token("alice");
    for n in 0..400 {
        // Valid names from a verified user: admitted only up to the cap.
        app.gql(
            Some(&token),
            &format!("query Op{n} {{ me {{ id }} }}"),
            json!({}),
        )
        .await;
    }
    let text = app.metrics().await;
    assert!(!text.contains("xxxxxxxx"), "a client string became a label");
    assert!(text.len() < 200_000, "metrics grew to {} bytes", text.len());
    assert!(text.contains("operation=\"graphql other\""));
    let labels = text
        .lines()
        .filter(|l| {
            l.starts_with("printgate_requests_total{surface=\"graphql\",operation=\"graphql Op")
        })
        .count();
    assert!(
        labels <= printgate::metrics::MAX_OPERATION_LABELS,
        "{labels} labels"
    );
}

#[tokio::test]
async fn persisted_queries_register_only_what_runs_and_stay_within_their_bytes() {
    let budget = 256 * 1024;
    let app = TestApp::spawn_with(None, |c| c.guards.apq_cache_bytes = budget).await;
    let post = |body: serde_json::Value| {
        app.client
            .post(format!("{}/graphql", app.url))
            .json(&body)
            .send()
    };
    let apq = |q: &str| {
        let h = printgate::graphql::apq::hash(q);
        json!({"version": 1, "sha256Hash": h})
    };
    // A document that does not parse is not kept.
    let broken = "{ me { id ";
    post(json!({"query": broken, "extensions": {"persistedQuery": apq(broken)}}))
        .await
        .unwrap();
    let again: serde_json::Value = post(json!({"extensions": {"persistedQuery": apq(broken)}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&again), "PERSISTED_QUERY_NOT_FOUND", "{again}");
    // Neither is one that does not validate.
    let invalid = "{ nope }";
    post(json!({"query": invalid, "extensions": {"persistedQuery": apq(invalid)}}))
        .await
        .unwrap();
    let again: serde_json::Value = post(json!({"extensions": {"persistedQuery": apq(invalid)}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&again), "PERSISTED_QUERY_NOT_FOUND");
    // A flood of valid 30 KB documents stays within the budget.
    for n in 0..100 {
        let q = format!("{{ me {{ id }} }} # {n} {}", "p".repeat(30_000));
        post(json!({"query": q, "extensions": {"persistedQuery": apq(&q)}}))
            .await
            .unwrap();
    }
    let text = app.metrics().await;
    let held = metric(&text, "printgate_cache_bytes{cache=\"persisted_queries\"}");
    assert!(held > 0.0 && held <= budget as f64, "{held}");
    // And the parsed-document cache is bounded too.
    let docs = metric(&text, "printgate_cache_bytes{cache=\"documents\"}");
    assert!(docs <= 32.0 * 1024.0 * 1024.0, "{docs}");
}

#[tokio::test]
async fn an_oversized_document_is_refused_before_it_is_parsed() {
    let app = TestApp::spawn().await;
    let q = format!("{{ me {{ id }} }} # {}", "p".repeat(70_000));
    let body = app.gql(None, &q, json!({})).await;
    assert_eq!(error_code(&body), "DOCUMENT_TOO_LARGE", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], 65536);
}

#[tokio::test]
async fn junk_query_parameters_do_not_make_new_cache_entries() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.create_printer(&token, "Prusa").await;
    for n in 0..200 {
        let r = app
            .rest(
                reqwest::Method::GET,
                &format!("/api/v1/printers/?junk={n}&with_archived=false"),
                Some(&token),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let entries = metric(
        &app.metrics().await,
        "printgate_cache_entries{cache=\"rest\"}",
    );
    assert!(
        entries <= 1.0,
        "{entries} entries for one route and one user"
    );
}

#[tokio::test]
async fn a_user_cannot_create_more_printers_than_the_cap_and_the_refusal_writes_nothing() {
    let app = TestApp::spawn_with(None, |c| c.guards.max_printers_per_user = 3).await;
    let token = app.token("alice");
    for n in 0..3 {
        app.create_printer(&token, &format!("p{n}")).await;
    }
    let rows = app.printer_rows().await;
    let body = app
        .gql(
            Some(&token),
            "mutation { createPrinter(input: {name: \"one more\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "PRINTER_LIMIT_REACHED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], 3);
    let rest = app
        .rest(reqwest::Method::POST, "/api/v1/printers/", Some(&token))
        .json(&json!({"name": "and another"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 403);
    let detail: serde_json::Value = rest.json().await.unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("limit of 3"));
    assert_eq!(app.printer_rows().await, rows, "nothing was written");
    // Another user has their own allowance.
    app.create_printer(&app.token("bob"), "bob's").await;
}

#[tokio::test]
async fn nul_characters_from_users_get_400_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let before = app.stored_printer(&id).await;
    let body = app
        .gql(
            Some(&token),
            "mutation($n: String!) { createPrinter(input: {name: $n}) { id } }",
            json!({"n": "bad\u{0}name"}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let patch = app
        .rest(
            reqwest::Method::PATCH,
            &format!("/api/v1/printers/{id}/"),
            Some(&token),
        )
        .json(&json!({"name": "bad\u{0}name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 400);
    let b: serde_json::Value = patch.json().await.unwrap();
    assert!(b["name"][0].as_str().is_some(), "{b}");
    assert_eq!(app.stored_printer(&id).await, before);
    let users = app.user_rows().await;
    let nul_sub = app
        .keys
        .mint("eve\u{0}", None, Duration::from_secs(60))
        .unwrap();
    let body = app.gql(Some(&nul_sub), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let rest = app
        .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&nul_sub))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 400);
    assert_eq!(app.user_rows().await, users, "no user was provisioned");
}

#[tokio::test]
async fn a_connection_that_trickles_its_headers_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(None, |c| {
        c.guards.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    // The server gives up on the headers and closes (maybe with a 408).
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the slow connection was closed");
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_refused() {
    let app = TestApp::spawn_with(None, |c| c.guards.max_connections_per_address = 4).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::new();
    let refused = fresh.get(format!("{}/healthz", app.url)).send().await;
    assert!(refused.is_err(), "a fifth connection is refused");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ok = fresh
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "places come back when connections close");
}

#[tokio::test]
async fn metrics_are_private_on_the_main_address() {
    let app = TestApp::spawn().await;
    let anon = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let wrong = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(app.metrics().await.contains("printgate_requests_total"));
    // Without a token configured, only the separate address serves them.
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = fresh_database(dir.path()).await;
    let mut config = test_config(dir.path(), url);
    config.guards.metrics_token = None;
    config.guards.metrics_bind = Some("127.0.0.1:0".into());
    let built = printgate::Application::build(config).await.unwrap();
    let main = format!("http://{}", built.local_addr().unwrap());
    let side = format!("http://{}", built.metrics_addr().unwrap());
    tokio::spawn(built.run_until(std::future::pending()));
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{main}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let m = c.get(format!("{side}/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    assert!(m.text().await.unwrap().contains("printgate_requests_total"));
    assert_eq!(
        c.get(format!("{side}/graphql"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// The error code of a refused operation over graphql-transport-ws: an
/// `error` message, or a `next` whose payload carries only errors.
fn refusal_code(msg: &serde_json::Value) -> &str {
    let errors = match msg["type"].as_str() {
        Some("error") => &msg["payload"],
        _ => &msg["payload"]["errors"],
    };
    assert!(msg["payload"]["data"].is_null(), "nothing ran: {msg}");
    errors[0]["extensions"]["code"].as_str().unwrap_or_default()
}

/// A graphql-transport-ws connection, initialised with `token`.
async fn subscriber(app: &TestApp, token: &str) -> Ws {
    let mut ws = graphql_ws(&app.url, None).await;
    ws_send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(ws_next_json(&mut ws).await["type"], "connection_ack");
    ws
}

#[tokio::test]
async fn only_subscriptions_run_over_the_websocket_and_trusted_mode_holds_there() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let allowed = "subscription { printerUpdated { id } }";
    std::fs::write(&manifest, serde_json::to_string(&json!([allowed])).unwrap()).unwrap();
    let app = TestApp::spawn_with(None, |c| c.trusted_documents = Some(manifest.clone())).await;
    let token = app.token("alice");
    let mut ws = subscriber(&app, &token).await;
    let rows = app.printer_rows().await;
    ws_send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": "mutation { createPrinter(input: {name: \"x\"}) { id } }"}}),
    )
    .await;
    let refused = ws_next_json(&mut ws).await;
    assert_eq!(
        refusal_code(&refused),
        "PERSISTED_QUERY_NOT_ALLOWED",
        "{refused}"
    );
    assert_eq!(app.printer_rows().await, rows, "the mutation did not run");
    // The trusted subscription runs.
    ws_send(
        &mut ws,
        json!({"id": "2", "type": "subscribe", "payload": {"query": allowed}}),
    )
    .await;
    // Outside trusted mode a mutation over the websocket is refused too.
    let open = TestApp::spawn().await;
    let token = open.token("alice");
    let mut ws = subscriber(&open, &token).await;
    ws_send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": "mutation { createPrinter(input: {name: \"x\"}) { id } }"}}),
    )
    .await;
    let refused = ws_next_json(&mut ws).await;
    assert_eq!(refusal_code(&refused), "SUBSCRIPTIONS_ONLY", "{refused}");
    assert_eq!(open.printer_rows().await, 0);
}

#[tokio::test]
async fn a_subscription_ends_with_4403_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let token = app
        .keys
        .mint("alice", None, Duration::from_secs(2))
        .unwrap();
    let mut ws = subscriber(&app, &token).await;
    ws_send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { printerUpdated { id } }"}}),
    )
    .await;
    assert_eq!(close_code(&mut ws, 6).await, Some(4403));
}

#[tokio::test]
async fn bad_or_missing_credentials_at_init_close_with_4403() {
    let app = TestApp::spawn().await;
    for payload in [json!({"Authorization": "Bearer junk"}), json!({})] {
        let mut ws = graphql_ws(&app.url, None).await;
        ws_send(
            &mut ws,
            json!({"type": "connection_init", "payload": payload}),
        )
        .await;
        assert_eq!(close_code(&mut ws, 5).await, Some(4403), "{payload}");
    }
}

#[tokio::test]
async fn a_websocket_that_never_initialises_is_closed_with_4408() {
    let app = TestApp::spawn_with(None, |c| {
        c.guards.ws_init_timeout = Duration::from_millis(300);
    })
    .await;
    let mut ws = graphql_ws(&app.url, None).await;
    assert_eq!(close_code(&mut ws, 5).await, Some(4408));
}

#[tokio::test]
async fn subscriptions_are_capped_per_connection_and_per_user() {
    let app = TestApp::spawn_with(None, |c| {
        c.guards.max_subscriptions_per_connection = 2;
        c.guards.max_subscriptions_per_user = 3;
    })
    .await;
    let token = app.token("alice");
    let sub = |id: &str| json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { printerUpdated { id } }"}});
    let mut one = subscriber(&app, &token).await;
    ws_send(&mut one, sub("a")).await;
    ws_send(&mut one, sub("b")).await;
    ws_send(&mut one, sub("c")).await;
    let refused = ws_next_json(&mut one).await;
    assert_eq!(refused["id"], "c");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "TOO_MANY_SUBSCRIPTIONS"
    );
    assert_eq!(refused["payload"][0]["extensions"]["limit"], 2);
    let mut two = subscriber(&app, &token).await;
    ws_send(&mut two, sub("a")).await;
    ws_send(&mut two, sub("b")).await;
    let refused = ws_next_json(&mut two).await;
    assert_eq!(refused["id"], "b", "the user's fourth: {refused}");
    assert_eq!(refused["payload"][0]["extensions"]["limit"], 3);
    // Completing one gives its place back.
    ws_send(&mut one, json!({"id": "a", "type": "complete"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws_send(&mut two, sub("c")).await;
    let id = app.create_printer(&token, "P").await;
    let next = ws_next_json(&mut two).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["payload"]["data"]["printerUpdated"]["id"], id.as_str());
}

#[tokio::test]
async fn a_websocket_that_answers_no_pings_is_closed() {
    let app = TestApp::spawn_with(None, |c| {
        c.guards.ws_idle_timeout = Duration::from_millis(600);
    })
    .await;
    let token = app.token("alice");
    let mut ws = subscriber(&app, &token).await;
    // Not reading means not answering the server's pings.
    // (The server waits 3 s for the closing handshake, then drops a client
    // that never reads: read within them to see the code.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(close_code(&mut ws, 5).await, Some(1011));
    // A client that reads (and so answers) stays connected.
    let mut live = subscriber(&app, &token).await;
    let stayed = tokio::time::timeout(Duration::from_secs(2), async {
        use futures_util::StreamExt;
        loop {
            match live.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None => return false,
                _ => {}
            }
        }
    })
    .await;
    assert!(stayed.is_err(), "a client answering pings was cut off");
}
