//! Webhooks against real local receivers: every delivery signed per
//! Standard Webhooks (checked here with an HMAC of our own, and in CI with
//! the stock Python library: `tests/webhooks/`), retried with the same
//! `webhook-id` after an outage, delivered after a SIGKILL and restart,
//! disabled by a 410, never held up by another endpoint's slow receiver,
//! once per endpoint with two instances, refused at loopback in
//! production, and bounded per endpoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::helpers::{Process, SECRET, TestApp, error_code, free_port};

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    body: String,
    at: Instant,
}

/// How a receiver answers: `fail_first` requests get `fail_with`, then
/// 200; every answer waits `delay` first.
#[derive(Clone)]
struct Behaviour {
    fail_first: usize,
    fail_with: u16,
    delay: Duration,
    extra: Vec<(&'static str, &'static str)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            fail_first: 0,
            fail_with: 503,
            delay: Duration::ZERO,
            extra: Vec::new(),
        }
    }
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0", behaviour).await
    }

    async fn start_on(addr: &str, behaviour: Behaviour) -> Self {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let b = behaviour.clone();
            async move {
                let n = {
                    let mut g = seen.lock().unwrap();
                    g.push(Got {
                        headers,
                        body,
                        at: Instant::now(),
                    });
                    g.len()
                };
                tokio::time::sleep(b.delay).await;
                let status = if n <= b.fail_first { b.fail_with } else { 200 };
                let mut resp = axum::response::Response::new(axum::body::Body::from("ok"));
                *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                for (k, v) in &b.extra {
                    resp.headers_mut().insert(*k, v.parse().unwrap());
                }
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests came (or fails after `secs`).
    async fn wait_for(&self, n: usize, secs: u64) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries within {secs} s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks a delivery's signature against `secret` as a receiver would:
/// HMAC-SHA256 over `id.timestamp.body`, any of the `v1,` entries, a
/// timestamp within five minutes. Returns the parsed body.
fn verified(g: &Got, secret: &str) -> Value {
    let h = |n: &str| g.headers.get(n).unwrap().to_str().unwrap().to_owned();
    let (id, ts, sigs) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    assert_eq!(h("content-type"), "application/json");
    let ts_n: i64 = ts.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts_n).abs() < 300);
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", g.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        sigs.split(' ').any(|s| s == expected),
        "no signature by this secret in {sigs}"
    );
    serde_json::from_str(&g.body).unwrap()
}

const CREATE: &str = "mutation($u: String!, $e: [WebhookEventType!]!) {
  createWebhook(input: {url: $u, events: $e, description: \"test\"}) { secret webhook { id url events enabled } }
}";

/// Creates an endpoint as `token`'s user; returns (id, secret).
async fn endpoint(app: &TestApp, token: &str, url: &str, events: Value) -> (String, String) {
    let body = app
        .gql(Some(token), CREATE, json!({"u": url, "e": events}))
        .await;
    let c = &body["data"]["createWebhook"];
    (
        c["webhook"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned(),
        c["secret"].as_str().unwrap().to_owned(),
    )
}

fn quick_retries(c: &mut printgate::Config) {
    c.webhooks.settings.retry_schedule =
        [0, 1, 1, 1].into_iter().map(Duration::from_secs).collect();
}

const DELIVERIES: &str = "query($id: ID!) { webhook(id: $id) { enabled disabledReason failingSince
  deliveries(first: 50) { edges { node { eventId eventType statusCode durationMs error nextRetryAt attemptedAt } } } } }";

#[tokio::test]
async fn events_arrive_signed_small_and_the_attempts_are_visible() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start(Behaviour::default()).await;
    let alice = app.token("alice");
    let (id, secret) = endpoint(&app, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    assert!(secret.starts_with("whsec_"));
    let printer = app.create_printer(&alice, "Voron").await;
    // Another user's printer is never Alice's event.
    app.create_printer(&app.token("bob"), "Bob's").await;
    let got = rx.wait_for(1, 10).await;
    let body = verified(&got[0], &secret);
    assert_eq!(body["type"], "printer.created");
    assert_eq!(body["data"]["printer"]["name"], "Voron");
    assert_eq!(body["data"]["printer"]["id"].to_string(), printer);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(got[0].body.len() < 20_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.got().len(), 1, "Bob's printer was not sent to Alice");

    // The test event reaches this endpoint, under its own id.
    let test = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { sendTestWebhook(id: $id) }",
            json!({"id": id}),
        )
        .await;
    let test_id = test["data"]["sendTestWebhook"].as_str().unwrap().to_owned();
    let got = rx.wait_for(2, 10).await;
    assert_eq!(verified(&got[1], &secret)["type"], "webhook.test");
    assert_eq!(got[1].headers["webhook-id"], test_id.as_str());

    // No read returns the secret; the attempts are listed newest first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    assert!(!listed.to_string().contains(&secret));
    let edges = listed["data"]["webhook"]["deliveries"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), 2, "{listed}");
    assert_eq!(edges[0]["node"]["eventId"], test_id.as_str());
    assert_eq!(edges[0]["node"]["eventType"], "WEBHOOK_TEST");
    assert_eq!(edges[0]["node"]["statusCode"], 200);
    assert!(edges[0]["node"]["error"].is_null());
    assert!(edges[0]["node"]["nextRetryAt"].is_null());
    let all = app
        .gql(Some(&alice), "{ webhooks { id url } }", json!({}))
        .await;
    assert!(!all.to_string().contains(&secret));
    // Bob sees no endpoint of Alice's.
    let bob = app
        .gql(Some(&app.token("bob")), DELIVERIES, json!({"id": id}))
        .await;
    assert!(bob["data"]["webhook"].is_null(), "{bob}");
}

#[tokio::test]
async fn an_event_during_an_outage_is_delivered_after_it_with_the_same_id() {
    let app = TestApp::spawn_with(None, quick_retries).await;
    let rx = Receiver::start(Behaviour {
        fail_first: 2,
        fail_with: 503,
        ..Default::default()
    })
    .await;
    let alice = app.token("alice");
    let (id, secret) = endpoint(&app, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    app.create_printer(&alice, "P").await;
    let got = rx.wait_for(3, 15).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|g| g.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one id on every attempt: {ids:?}"
    );
    for g in &got {
        verified(g, &secret);
    }
    // The retries waited (about a second each).
    assert!(got[1].at - got[0].at >= Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    let nodes: Vec<&Value> = listed["data"]["webhook"]["deliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["statusCode"], 200);
    assert_eq!(nodes[2]["statusCode"], 503);
    assert!(nodes[2]["nextRetryAt"].is_string());
    assert!(nodes[2]["error"].as_str().unwrap().contains("503"));
    assert!(listed["data"]["webhook"]["failingSince"].is_null());
    assert_eq!(rx.got().len(), 3, "a delivered event is not sent again");
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_the_user_sees_why() {
    let app = TestApp::spawn_with(None, quick_retries).await;
    let rx = Receiver::start(Behaviour {
        fail_first: 100,
        fail_with: 410,
        ..Default::default()
    })
    .await;
    let alice = app.token("alice");
    let (id, _) = endpoint(&app, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    app.create_printer(&alice, "P1").await;
    rx.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let w = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    assert_eq!(w["data"]["webhook"]["enabled"], false, "{w}");
    assert!(
        w["data"]["webhook"]["disabledReason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    app.create_printer(&alice, "P2").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.got().len(), 1, "nothing is sent to a disabled endpoint");
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_schedule_is_disabled() {
    let app = TestApp::spawn_with(None, |c| {
        c.webhooks.settings.retry_schedule = vec![Duration::ZERO, Duration::from_millis(500)];
    })
    .await;
    let rx = Receiver::start(Behaviour {
        fail_first: 100,
        fail_with: 500,
        ..Default::default()
    })
    .await;
    let alice = app.token("alice");
    let (id, _) = endpoint(&app, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    app.create_printer(&alice, "P1").await;
    rx.wait_for(2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    assert_eq!(w["data"]["webhook"]["enabled"], false, "{w}");
    let why = w["data"]["webhook"]["disabledReason"].as_str().unwrap();
    assert!(why.contains("500"), "{why}");
    assert_eq!(rx.got().len(), 2, "no attempt past the schedule");
    // Re-enabling clears the reason.
    let on = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { updateWebhook(id: $id, input: {enabled: true}) { enabled disabledReason } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        on["data"]["updateWebhook"],
        json!({"enabled": true, "disabledReason": null})
    );
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_another_users_endpoint() {
    let app = TestApp::spawn().await;
    let slow = Receiver::start(Behaviour {
        delay: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let fast = Receiver::start(Behaviour::default()).await;
    let (alice, bob) = (app.token("alice"), app.token("bob"));
    endpoint(&app, &alice, &slow.url, json!(["PRINTER_CREATED"])).await;
    // Alice's slow endpoint gets several events queued first.
    for n in 0..3 {
        app.create_printer(&alice, &format!("A{n}")).await;
    }
    slow.wait_for(1, 5).await;
    endpoint(&app, &bob, &fast.url, json!(["PRINTER_CREATED"])).await;
    let sent = Instant::now();
    app.create_printer(&bob, "B").await;
    fast.wait_for(1, 5).await;
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "Bob's delivery waited {:?} behind Alice's slow receiver",
        sent.elapsed()
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = TestApp::spawn_with(None, |c| {
        c.webhooks.settings.retry_schedule = vec![Duration::ZERO];
    })
    .await;
    let target = Receiver::start(Behaviour::default()).await;
    let redirecting = Receiver::start(Behaviour {
        fail_first: 100,
        fail_with: 307,
        extra: vec![("location", "http://127.0.0.1:1/elsewhere")],
        ..Default::default()
    })
    .await;
    let alice = app.token("alice");
    let (id, _) = endpoint(&app, &alice, &redirecting.url, json!(["PRINTER_CREATED"])).await;
    app.create_printer(&alice, "P").await;
    redirecting.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(target.got().is_empty());
    let w = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    let node = &w["data"]["webhook"]["deliveries"]["edges"][0]["node"];
    assert_eq!(node["statusCode"], 307);
    assert!(
        node["error"].as_str().unwrap().contains("redirect"),
        "{node}"
    );
}

#[tokio::test]
async fn production_refuses_loopback_and_private_targets_and_writes_nothing() {
    let app = TestApp::spawn_with(None, |c| {
        c.jwt.production = true;
        c.webhooks.settings.allow_private_targets = false;
        c.webhooks.worker.allow_private_targets = false;
    })
    .await;
    let alice = app.token("alice");
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://10.0.0.5/",
        "ftp://example.com/",
    ] {
        let body = app
            .gql(
                Some(&alice),
                CREATE,
                json!({"u": url, "e": ["PRINT_STARTED"]}),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{url}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "url");
    }
    assert_eq!(
        entity::webhook::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start(Behaviour::default()).await;
    let alice = app.token("alice");
    let (id, old) = endpoint(&app, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    let rotated = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { previousSecretExpiresAt } } }",
            json!({"id": id}),
        )
        .await;
    let new = rotated["data"]["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap();
    assert_ne!(new, old);
    assert!(
        rotated["data"]["rotateWebhookSecret"]["webhook"]["previousSecretExpiresAt"].is_string()
    );
    app.create_printer(&alice, "P").await;
    let got = rx.wait_for(1, 10).await;
    verified(&got[0], new);
    verified(&got[0], &old);
}

#[tokio::test]
async fn the_pending_queue_of_an_endpoint_is_bounded_and_says_so() {
    let app = TestApp::spawn_with(None, |c| {
        c.guards.max_pending_deliveries = 2;
        // The first attempt an hour away: everything stays pending.
        c.webhooks.settings.retry_schedule = vec![Duration::from_secs(3600)];
    })
    .await;
    let alice = app.token("alice");
    let (id, _) = endpoint(
        &app,
        &alice,
        "http://127.0.0.1:9/",
        json!(["PRINTER_CREATED"]),
    )
    .await;
    for n in 0..4 {
        app.create_printer(&alice, &format!("P{n}")).await;
    }
    use sea_orm::{ColumnTrait, QueryFilter};
    let pending = entity::webhook_delivery::Entity::find()
        .filter(entity::webhook_delivery::Column::State.eq("PENDING"))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(pending, 2);
    let w = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    let edges = w["data"]["webhook"]["deliveries"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), 2, "{w}");
    assert!(
        edges[0]["node"]["error"]
            .as_str()
            .unwrap()
            .contains("Not queued")
    );
}

#[tokio::test]
async fn the_cap_on_endpoints_per_user_holds() {
    let app = TestApp::spawn_with(None, |c| c.guards.max_webhooks_per_user = 1).await;
    let alice = app.token("alice");
    endpoint(
        &app,
        &alice,
        "http://127.0.0.1:9/a",
        json!(["PRINT_STARTED"]),
    )
    .await;
    let body = app
        .gql(
            Some(&alice),
            CREATE,
            json!({"u": "http://127.0.0.1:9/b", "e": ["PRINT_STARTED"]}),
        )
        .await;
    assert_eq!(error_code(&body), "WEBHOOK_LIMIT_REACHED");
    assert_eq!(
        entity::webhook::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_event_queued_before_a_sigkill_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _pg) = crate::helpers::fresh_database(dir.path()).await;
    let rx_port = free_port();
    let rx_url = format!("http://127.0.0.1:{rx_port}/hook");
    let keys = printgate::auth::JwtKeys::from_secret(SECRET.as_bytes());
    let alice = keys.mint("alice", None, Duration::from_secs(600)).unwrap();
    let client = reqwest::Client::new();
    let gql = |base: String, q: &'static str, v: Value| {
        let req = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&alice)
            .json(&json!({"query": q, "variables": v}));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let schedule = [(
        "PRINTGATE_WEBHOOK_RETRY_SCHEDULE",
        "0s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
    )];
    let mut first = Process::start_with(&db, &schedule).await;
    let made = gql(
        first.url.clone(),
        CREATE,
        json!({"u": rx_url, "e": ["PRINTER_CREATED"]}),
    )
    .await;
    let secret = made["data"]["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // The receiver is down: the event waits in the outbox.
    let created = gql(
        first.url.clone(),
        "mutation { createPrinter(input: {name: \"survivor\"}) { id } }",
        json!({}),
    )
    .await;
    assert!(
        created["data"]["createPrinter"]["id"].is_string(),
        "{created}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGKILL (what `Child::kill` sends): no shutdown, no flush.
    first.kill();
    let rx = Receiver::start_on(&format!("127.0.0.1:{rx_port}"), Behaviour::default()).await;
    let _second = Process::start_with(&db, &schedule).await;
    let got = rx.wait_for(1, 20).await;
    let body = verified(&got[0], &secret);
    assert_eq!(body["type"], "printer.created");
    assert_eq!(body["data"]["printer"]["name"], "survivor");
}

#[tokio::test]
async fn two_instances_deliver_each_event_once_per_endpoint() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(Some(a.database_url.clone())).await;
    let rx = Receiver::start(Behaviour::default()).await;
    let alice = a.token("alice");
    endpoint(&a, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    for n in 0..10 {
        let app = if n % 2 == 0 { &a } else { &b };
        app.create_printer(&alice, &format!("P{n}")).await;
    }
    rx.wait_for(10, 15).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ids: Vec<String> = rx
        .got()
        .iter()
        .map(|g| g.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((total, ids.len()), (10, 10), "each event once");
}

#[tokio::test]
async fn an_agent_brings_online_print_and_offline_events_after_the_grace() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let app = TestApp::spawn_with(None, |c| {
        c.webhooks.settings.offline_grace = Duration::from_secs(2);
    })
    .await;
    let rx = Receiver::start(Behaviour::default()).await;
    let alice = app.token("alice");
    let (_, secret) = endpoint(
        &app,
        &alice,
        &rx.url,
        json!([
            "PRINTER_ONLINE",
            "PRINTER_OFFLINE",
            "PRINT_STARTED",
            "PRINT_FINISHED",
            "PRINT_FAILED"
        ]),
    )
    .await;
    let made = app
        .gql(
            Some(&alice),
            "mutation { createPrinter(input: {name: \"MK4\"}) { id authToken } }",
            json!({}),
        )
        .await;
    let auth = made["data"]["createPrinter"]["authToken"].as_str().unwrap();
    let connect = || {
        let mut req = format!("{}/ws/dev/", app.url.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("bearer {auth}").parse().unwrap());
        async move { tokio_tungstenite::connect_async(req).await.unwrap().0 }
    };
    let status = |ts: i64, printing: bool| {
        json!({"_ts": ts, "state": {"text": if printing {"Printing"} else {"Operational"},
            "flags": {"operational": true, "printing": printing}}})
    };
    let mut ws = connect().await;
    let ts = 1_700_000_100;
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"current_print_ts": ts, "event": {"event_type": "PrintStarted", "data": {"name": "benchy.gcode"}}, "status": status(ts, true)})))
        .await
        .unwrap();
    ws.send(send(json!({"current_print_ts": ts, "event": {"event_type": "PrintFailed"}, "status": status(ts + 5, false)})))
        .await
        .unwrap();
    let got = rx.wait_for(3, 10).await;
    let types: Vec<String> = got
        .iter()
        .map(|g| verified(g, &secret)["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(types.contains(&"printer.online".to_owned()), "{types:?}");
    let started = got
        .iter()
        .map(|g| verified(g, &secret))
        .find(|b| b["type"] == "print.started")
        .expect("print.started");
    assert_eq!(started["data"]["print"]["filename"], "benchy.gcode");
    assert_eq!(started["data"]["printer"]["name"], "MK4");
    assert!(types.contains(&"print.failed".to_owned()), "{types:?}");
    // A quick reconnect (a flap) announces nothing.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ws = connect().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.got().len(), 3, "a flap is not announced");
    // Gone for longer than the grace: offline, once.
    drop(ws);
    let got = rx.wait_for(4, 10).await;
    assert_eq!(verified(&got[3], &secret)["type"], "printer.offline");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.got().len(), 4);
}

#[tokio::test]
async fn the_deliveries_list_is_never_answered_stale_from_the_query_cache() {
    let app = TestApp::spawn().await;
    // The receiver answers after 600 ms: the attempt is recorded well
    // after the change that queued it, and within the cache's one-second
    // age limit of an answer kept meanwhile.
    let rx = Receiver::start(Behaviour {
        delay: Duration::from_millis(600),
        ..Default::default()
    })
    .await;
    let alice = app.token("alice");
    let (id, _) = endpoint(&app, &alice, &rx.url, json!(["PRINTER_CREATED"])).await;
    let count = |body: &Value| {
        body["data"]["webhook"]["deliveries"]["edges"]
            .as_array()
            .map_or(0, Vec::len)
    };
    // Asked twice: the second answer may come from the cache.
    for _ in 0..2 {
        let before = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
        assert_eq!(count(&before), 0);
    }
    // The worker's attempt (no request of Alice's) changes the answer.
    app.create_printer(&alice, "P").await;
    rx.wait_for(1, 10).await;
    // Asked while the attempt is in flight: kept, with no attempt yet.
    for _ in 0..2 {
        let during = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
        assert_eq!(count(&during), 0);
    }
    tokio::time::sleep(Duration::from_millis(750)).await;
    let after = app.gql(Some(&alice), DELIVERIES, json!({"id": id})).await;
    assert_eq!(count(&after), 1, "a stale deliveries list: {after}");
}
