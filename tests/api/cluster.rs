//! Several instances on one PostgreSQL: commands, subscriptions and the
//! one-connection rule work whichever instance each party lands on, and an
//! instance's crash is survived. Needs `PRINTGATE_TEST_DATABASE_URL`.

use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{FreshPostgres, PG_ENV, Process, SECRET, TestApp, Ws, graphql_ws};

/// The PostgreSQL admin URL, or a notice (outside the captured output) that
/// these tests were skipped and how to run them.
fn postgres_or_skip(test: &str) -> Option<String> {
    let url = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs PostgreSQL; set {PG_ENV}=postgres://postgres@127.0.0.1:5432/test to run it"
        );
    }
    url
}

async fn next_frame(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a frame within 10 s")
        .expect("open")
        .expect("frame")
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(t) = next_frame(ws).await {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn gql(client: &reqwest::Client, base: &str, token: &str, q: &str, vars: Value) -> Value {
    client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": q, "variables": vars}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn status(ts: i64, completion: f64) -> Value {
    json!({"current_print_ts": 1_700_000_000, "status": {"_ts": ts, "state": {"text": "Printing", "flags": {"printing": true}}, "progress": {"completion": completion}, "job": {"file": {"name": "a.gcode"}}}})
}

#[tokio::test]
async fn two_instances_share_commands_subscriptions_presence_and_survive_a_crash() {
    let Some(admin) =
        postgres_or_skip("two_instances_share_commands_subscriptions_presence_and_survive_a_crash")
    else {
        return;
    };
    let pg = FreshPostgres::create(&admin).await;
    // B runs in this process (so the test can read its database); A is a
    // separate process that can be killed.
    let b = TestApp::spawn_on(Some(pg.url.clone())).await;
    let mut a = Process::start(&pg.url).await;
    let token = b.token("alice");
    let created = gql(
        &b.client,
        &a.url,
        &token,
        "mutation { createPrinter(input: {name: \"P\"}) { id authToken } }",
        json!({}),
    )
    .await;
    let id = created["data"]["createPrinter"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = created["data"]["createPrinter"]["authToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // A subscriber on B.
    let mut sub = graphql_ws(&b.url, None).await;
    send(
        &mut sub,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(next_json(&mut sub).await["type"], "connection_ack");
    send(&mut sub, json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { printerUpdated { id status { progress { completion } } } }"}})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The agent on A; its status reaches the subscriber on B.
    let mut on_a = crate::helpers::agent_ws(&a.url, &auth).await;
    next_json(&mut on_a).await;
    send(&mut on_a, status(1_700_000_001, 42.0)).await;
    let seen = loop {
        let m = next_json(&mut sub).await;
        if m["payload"]["data"]["printerUpdated"]["status"]["progress"]["completion"] == 42.0 {
            break m;
        }
    };
    assert_eq!(seen["payload"]["data"]["printerUpdated"]["id"], id.as_str());
    // Wait for the print to be current, then pause through B.
    for _ in 0..50 {
        let p = gql(
            &b.client,
            &b.url,
            &token,
            "query($id: ID!) { printer(id: $id) { currentPrint { id } } }",
            json!({"id": id}),
        )
        .await;
        if !p["data"]["printer"]["currentPrint"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pause = gql(
        &b.client,
        &b.url,
        &token,
        "mutation($id: ID!) { pausePrint(id: $id) { succeeded } }",
        json!({"id": id}),
    );
    let (resp, frame) = tokio::join!(pause, async {
        loop {
            let f = next_json(&mut on_a).await;
            if f.get("commands").is_some() {
                return f;
            }
        }
    });
    assert_eq!(resp["data"]["pausePrint"]["succeeded"], true, "{resp}");
    assert_eq!(frame["commands"][0]["cmd"], "pause");

    // A duplicate agent on B closes A's connection with 4321.
    let mut on_b = crate::helpers::agent_ws(&b.url, &auth).await;
    next_json(&mut on_b).await;
    let code = loop {
        match next_frame(&mut on_a).await {
            Message::Close(Some(f)) => break u16::from(f.code),
            _ => continue,
        }
    };
    assert_eq!(code, 4321);
    drop(on_b);

    // A crashes with an agent on it: the agent reconnects to B and all works.
    let mut on_a = crate::helpers::agent_ws(&a.url, &auth).await;
    next_json(&mut on_a).await;
    send(&mut on_a, status(1_700_000_010, 50.0)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    // Nobody told the database the agent left: the 120-second rule makes it
    // offline. Age its last status past the limit instead of waiting.
    {
        use sea_orm::{ActiveModelTrait, Set};
        let mut row: entity::printer::ActiveModel = b.stored_printer(&id).await.into();
        row.status_at = Set(Some(chrono::Utc::now() - chrono::Duration::seconds(121)));
        row.update(&b.db).await.unwrap();
    }
    let offline = gql(
        &b.client,
        &b.url,
        &token,
        "query($id: ID!) { printer(id: $id) { status { raw } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(offline["data"]["printer"]["status"], Value::Null);
    let mut again = crate::helpers::agent_ws(&b.url, &auth).await;
    next_json(&mut again).await;
    send(&mut again, status(1_700_000_020, 60.0)).await;
    loop {
        let m = next_json(&mut sub).await;
        if m["payload"]["data"]["printerUpdated"]["status"]["progress"]["completion"] == 60.0 {
            break;
        }
    }
    let resume = gql(
        &b.client,
        &b.url,
        &token,
        "mutation($id: ID!) { resumePrint(id: $id) { succeeded } }",
        json!({"id": id}),
    );
    let (resp, _) = tokio::join!(resume, async {
        loop {
            if next_json(&mut again).await.get("commands").is_some() {
                return;
            }
        }
    });
    assert_eq!(resp["data"]["resumePrint"]["succeeded"], true);
}

/// A TCP proxy to PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, gen_rx) = tokio::sync::watch::channel(0u64);
        let flag = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let mut cut = gen_rx.clone();
                // Only cuts after this connection opened close it.
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
        }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_unreachable_and_recovers() {
    let Some(admin) =
        postgres_or_skip("readyz_fails_while_the_database_is_unreachable_and_recovers")
    else {
        return;
    };
    let pg = FreshPostgres::create(&admin).await;
    let host_port = pg
        .url
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let proxy = Proxy::start(host_port.clone()).await;
    let via_proxy = pg
        .url
        .replace(&host_port, &format!("127.0.0.1:{}", proxy.port));
    let app = TestApp::spawn_on(Some(via_proxy)).await;
    let ready = || async {
        app.client
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(ready().await.status(), 200);
    proxy.cut();
    let down = ready().await;
    assert_eq!(down.status(), 503);
    assert_eq!(down.json::<Value>().await.unwrap()["status"], "unavailable");
    proxy.restore();
    let mut status = 0;
    for _ in 0..50 {
        status = ready().await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "ready again without a restart");
    let token = app.token("alice");
    let body = app
        .gql(Some(&token), "{ printers { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["printers"], json!([]), "{body}");
}

#[tokio::test]
async fn a_write_on_one_instance_is_read_at_once_on_the_other() {
    let Some(admin) = postgres_or_skip("a_write_on_one_instance_is_read_at_once_on_the_other")
    else {
        return;
    };
    let pg = FreshPostgres::create(&admin).await;
    let a = TestApp::spawn_on(Some(pg.url.clone())).await;
    let b = TestApp::spawn_on(Some(pg.url.clone())).await;
    let token = a.token("alice");
    let id = a.create_printer(&token, "n0").await;
    let path = format!("/api/v1/printers/{id}/");
    // Warm B's cache: the first answer teaches it the user, the second is
    // kept.
    for _ in 0..3 {
        b.rest(reqwest::Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap();
    }
    let mut fresh = 0;
    for n in 1..=200 {
        let name = format!("n{n}");
        let patched = a
            .rest(reqwest::Method::PATCH, &path, Some(&token))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        let read: Value = b
            .rest(reqwest::Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if read["name"] == name.as_str() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 200, "reads on B right after writes on A");
}

#[tokio::test]
async fn a_write_on_one_instance_is_queried_at_once_on_the_other() {
    let Some(admin) = postgres_or_skip("a_write_on_one_instance_is_queried_at_once_on_the_other")
    else {
        return;
    };
    let pg = FreshPostgres::create(&admin).await;
    let a = TestApp::spawn_on(Some(pg.url.clone())).await;
    let b = TestApp::spawn_on(Some(pg.url.clone())).await;
    let token = a.token("alice");
    let id = a.create_printer(&token, "n0").await;
    let query = "query($id: ID!) { printer(id: $id) { name } }";
    for _ in 0..3 {
        b.gql(Some(&token), query, json!({"id": id})).await;
    }
    let mut fresh = 0;
    for n in 1..=100 {
        let name = format!("n{n}");
        a.gql(
            Some(&token),
            "mutation($id: ID!, $n: String!) { updatePrinter(id: $id, input: {name: $n}) { id } }",
            json!({"id": id, "n": name}),
        )
        .await;
        let read = b.gql(Some(&token), query, json!({"id": id})).await;
        if read["data"]["printer"]["name"] == name.as_str() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 100, "queries on B right after writes on A");
}

/// A printer whose agent is connected to `base` and has sent a status.
async fn live_printer(client: &reqwest::Client, base: &str, token: &str) -> (String, Ws) {
    let created = gql(
        client,
        base,
        token,
        "mutation { createPrinter(input: {name: \"P\"}) { id authToken } }",
        json!({}),
    )
    .await;
    let id = created["data"]["createPrinter"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = created["data"]["createPrinter"]["authToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = crate::helpers::agent_ws(base, &auth).await;
    next_json(&mut ws).await;
    send(&mut ws, status(1, 10.0)).await;
    for _ in 0..100 {
        let b = gql(
            client,
            base,
            token,
            "query($id: ID!) { printer(id: $id) { status { progress { completion } } } }",
            json!({"id": id}),
        )
        .await;
        if b["data"]["printer"]["status"].is_object() {
            return (id, ws);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the status never showed");
}

#[tokio::test]
async fn after_a_crash_and_restart_a_printer_without_its_agent_shows_offline_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let mut first = Process::start(&url).await;
    let keys = printgate::auth::JwtKeys::from_secret(SECRET.as_bytes());
    let token = keys.mint("alice", None, Duration::from_secs(600)).unwrap();
    let client = reqwest::Client::new();
    let (id, _agent) = live_printer(&client, &first.url, &token).await;
    let q = "query($id: ID!) { printer(id: $id) { online state lastSeenAt status { progress { completion } } } fleet { online offline } }";
    let before = gql(&client, &first.url, &token, q, json!({"id": id})).await;
    assert_eq!(before["data"]["printer"]["online"], true, "{before}");
    assert_eq!(before["data"]["printer"]["state"], "PRINTING", "{before}");
    assert_eq!(before["data"]["fleet"]["online"], 1, "{before}");
    first.kill();
    let second = Process::start(&url).await;
    let b = gql(&client, &second.url, &token, q, json!({"id": id})).await;
    assert!(
        b["data"]["printer"]["status"].is_null(),
        "still shown online: {b}"
    );
    assert_eq!(b["data"]["printer"]["online"], false, "{b}");
    assert_eq!(b["data"]["printer"]["state"], "OFFLINE", "{b}");
    assert!(b["data"]["printer"]["lastSeenAt"].is_string(), "{b}");
    assert_eq!(b["data"]["fleet"]["online"], 0, "{b}");
    assert_eq!(b["data"]["fleet"]["offline"], 1, "{b}");
}

#[tokio::test]
async fn a_printer_is_online_on_every_instance_while_its_agent_is_connected_to_one() {
    let Some(admin) = postgres_or_skip(
        "a_printer_is_online_on_every_instance_while_its_agent_is_connected_to_one",
    ) else {
        return;
    };
    let pg = FreshPostgres::create(&admin).await;
    let a = Process::start(&pg.url).await;
    let b = Process::start(&pg.url).await;
    let keys = printgate::auth::JwtKeys::from_secret(SECRET.as_bytes());
    let token = keys.mint("alice", None, Duration::from_secs(600)).unwrap();
    let client = reqwest::Client::new();
    let (id, agent) = live_printer(&client, &a.url, &token).await;
    let q = "query($id: ID!) { printer(id: $id) { online state } fleet { online printing } printers(filter: {online: true}) { id } }";
    for base in [&a.url, &b.url] {
        let body = gql(&client, base, &token, q, json!({"id": id})).await;
        assert_eq!(body["data"]["printer"]["online"], true, "{body}");
        assert_eq!(body["data"]["printer"]["state"], "PRINTING", "{body}");
        assert_eq!(body["data"]["fleet"]["online"], 1, "{body}");
        assert_eq!(body["data"]["fleet"]["printing"], 1, "{body}");
        assert_eq!(body["data"]["printers"][0]["id"], id.as_str(), "{body}");
    }
    // The agent goes away: offline everywhere, at once.
    drop(agent);
    let started = std::time::Instant::now();
    for base in [&a.url, &b.url] {
        loop {
            let body = gql(&client, base, &token, q, json!({"id": id})).await;
            if body["data"]["printer"]["online"] == false {
                assert_eq!(body["data"]["printer"]["state"], "OFFLINE", "{body}");
                assert_eq!(body["data"]["fleet"]["online"], 0, "{body}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still online: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_crashed_instances_printers_go_offline_on_the_others() {
    let Some(admin) = postgres_or_skip("a_crashed_instances_printers_go_offline_on_the_others")
    else {
        return;
    };
    let pg = FreshPostgres::create(&admin).await;
    let mut a = Process::start(&pg.url).await;
    let b = Process::start(&pg.url).await;
    let keys = printgate::auth::JwtKeys::from_secret(SECRET.as_bytes());
    let token = keys.mint("alice", None, Duration::from_secs(600)).unwrap();
    let client = reqwest::Client::new();
    let (id, _agent) = live_printer(&client, &a.url, &token).await;
    a.kill();
    // The heartbeat goes stale after 30 s; the sweep runs every 10 s.
    let started = std::time::Instant::now();
    loop {
        let body = gql(
            &client,
            &b.url,
            &token,
            "query($id: ID!) { printer(id: $id) { status { progress { completion } } } }",
            json!({"id": id}),
        )
        .await;
        if body["data"]["printer"]["status"].is_null() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still online after 60 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
