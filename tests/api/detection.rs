//! Failure detection against a fake ML service on a local port that
//! answers scripted detections: the request shape of detection.md §1, the
//! math after each frame, the §2 reasons for not judging, alerts and the
//! automatic pause as a real agent sees it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use printgate::service::prediction::{Detection, State as Prediction, Verdict};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Spawned, TestApp, Ws, free_port};

/// What the fake ML service saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    /// Whether the `img` URL loaded a JPEG, with no credentials.
    image_loaded: bool,
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<f64>>,
    seen: Mutex<Vec<Seen>>,
    /// Answer garbage instead.
    garbage: Mutex<bool>,
    /// Answer only after this long.
    delay: Mutex<Option<Duration>>,
    /// Fetch the image only after this long, and answer an error (as
    /// Obico's does) when it did not load.
    fetch_after: Mutex<Option<Duration>>,
}

async fn predict(
    State(fake): State<Arc<Fake>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let img = q.get("img").cloned().unwrap_or_default();
    let fetch_after = *fake.fetch_after.lock().unwrap();
    if let Some(d) = fetch_after {
        tokio::time::sleep(d).await;
    }
    let image_loaded = match reqwest::get(&img).await {
        Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| b.starts_with(&[0xFF, 0xD8])),
        _ => false,
    };
    fake.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        image_loaded,
    });
    let delay = *fake.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if *fake.garbage.lock().unwrap() {
        return "<html>oops</html>".into_response();
    }
    if fetch_after.is_some() && !image_loaded {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "image could not be fetched"})),
        )
            .into_response();
    }
    let p = fake.script.lock().unwrap().pop_front().unwrap_or(0.0);
    let detections = if p > 0.0 {
        json!([["failure", p, [100.0, 100.0, 20.0, 20.0]]])
    } else {
        json!([])
    };
    axum::Json(json!({"detections": detections})).into_response()
}

/// A fake ML service; returns its state and URL.
async fn fake_ml() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/p/", axum::routing::get(predict))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, url)
}

/// An app with detection on, judging every frame (no minimum interval).
async fn app_with_detection(ml: &str, adjust: impl FnOnce(&mut printgate::Config)) -> TestApp {
    let config = detection_config(ml, Some("ml-secret"));
    TestApp::spawn_with(None, move |c| {
        c.detection = Some(config);
        adjust(c);
    })
    .await
}

/// Detection against `ml`, judging every frame, with a 2 s ML timeout.
fn detection_config(ml: &str, token: Option<&str>) -> printgate::detection::DetectionConfig {
    printgate::detection::DetectionConfig {
        ml_api_url: ml.to_owned(),
        ml_api_token: token.map(str::to_owned),
        ml_timeout: Duration::from_secs(2),
        image_base: String::new(),
        settings: printgate::service::detection::DetectionSettings {
            min_interval: Duration::ZERO,
            alert_cooldown: Duration::from_secs(90),
        },
        queue: 16,
        concurrency: 2,
    }
}

struct Printer {
    id: String,
    auth: String,
    ws: Ws,
}

/// A printer whose agent is connected and printing.
async fn printing(app: &TestApp, token: &str, action_on_failure: &str) -> Printer {
    let body = app
        .gql(
            Some(token),
            "mutation($a: ActionOnFailure!) { createPrinter(input: {name: \"P\", actionOnFailure: $a}) { id authToken } }",
            json!({"a": action_on_failure}),
        )
        .await;
    let id = body["data"]["createPrinter"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = body["data"]["createPrinter"]["authToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut req = format!("{}/ws/dev/", app.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("bearer {auth}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.next().await; // remote_status
    set_printing(&mut ws, true).await;
    let p = Printer { id, auth, ws };
    wait_for(app, token, &p.id, "currentPrint { id }", |v| {
        v["currentPrint"].is_object()
    })
    .await;
    p
}

async fn set_printing(ws: &mut Ws, printing: bool) {
    let frame = json!({
        "current_print_ts": 1_700_000_000,
        "status": {"_ts": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            "state": {"text": if printing { "Printing" } else { "Paused" }, "flags": {"printing": printing, "paused": !printing}},
            "job": {"file": {"name": "benchy.gcode"}}}
    });
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

async fn wait_for(
    app: &TestApp,
    token: &str,
    id: &str,
    fields: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let q = format!("query($id: ID!) {{ printer(id: $id) {{ {fields} }} }}");
    for _ in 0..200 {
        let b = app.gql(Some(token), &q, json!({"id": id})).await;
        if ok(&b["data"]["printer"]) {
            return b["data"]["printer"].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never held for printer {id}");
}

fn jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend_from_slice(&[9u8; 128]);
    v
}

async fn upload(app: &TestApp, auth: &str, extra: &[(&str, &str)]) {
    let mut form = reqwest::multipart::Form::new().part(
        "pic",
        reqwest::multipart::Part::bytes(jpeg()).file_name("s.jpg"),
    );
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let r = app
        .rest(reqwest::Method::POST, "/api/v1/octo/pic/", None)
        .header("authorization", format!("Token {auth}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Uploads a frame and waits until the fake ML service has seen `n`
/// requests in all.
async fn judged_frame(app: &TestApp, fake: &Fake, auth: &str, n: usize) {
    upload(app, auth, &[]).await;
    for _ in 0..400 {
        if fake.seen.lock().unwrap().len() >= n {
            // And until the result is applied (a status-free read).
            tokio::time::sleep(Duration::from_millis(30)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the ML service never saw request {n}");
}

fn frame(p: f64) -> Vec<Detection> {
    if p > 0.0 {
        vec![Detection {
            confidence: p,
            bbox: [0.0; 4],
        }]
    } else {
        Vec::new()
    }
}

#[tokio::test]
async fn frames_reach_the_ml_service_as_obico_sends_them_and_move_the_score_by_the_math() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let p = printing(&app, &token, "PAUSE").await;
    let mut expected = Prediction::default();
    for (n, conf) in [0.5, 0.5, 0.0, 1.2].into_iter().enumerate() {
        fake.script.lock().unwrap().push_back(conf);
        judged_frame(&app, &fake, &p.auth, n + 1).await;
        expected = expected.judge(&frame(conf), 1.0, None).0;
        let want = expected.normalized_p;
        let got = wait_for(&app, &token, &p.id, "normalizedP", |v| {
            (v["normalizedP"].as_f64().unwrap_or(-1.0) - want).abs() < 1e-9
        })
        .await;
        assert!((got["normalizedP"].as_f64().unwrap() - want).abs() < 1e-9);
    }
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.path, "/p/");
        assert_eq!(s.authorization.as_deref(), Some("Bearer ml-secret"));
        assert!(s.image_loaded, "the img URL loads the uploaded JPEG");
    }
    // The REST body carries the same score.
    let rest: Value = app
        .rest(
            reqwest::Method::GET,
            &format!("/api/v1/printers/{}/", p.id),
            Some(&token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!((rest["normalized_p"].as_f64().unwrap() - expected.normalized_p).abs() < 1e-9);
    let stored: Vec<entity::print_prediction::Model> = {
        use sea_orm::EntityTrait;
        entity::print_prediction::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
    };
    assert_eq!(stored.len(), 4, "each judged frame is kept for the print");
    let curve = app
        .gql(
            Some(&token),
            "query($id: ID!) { printer(id: $id) { currentPrint { predictions { p normalizedP detections { confidence bbox } } } } }",
            json!({"id": p.id}),
        )
        .await;
    let frames = curve["data"]["printer"]["currentPrint"]["predictions"]
        .as_array()
        .unwrap()
        .clone();
    let ps: Vec<f64> = frames.iter().map(|f| f["p"].as_f64().unwrap()).collect();
    assert_eq!(ps, [0.5, 0.5, 0.0, 1.2]);
    assert_eq!(
        frames[0]["detections"],
        json!([{"confidence": 0.5, "bbox": [100.0, 100.0, 20.0, 20.0]}])
    );
    assert_eq!(frames[2]["detections"], json!([]));
    assert!((frames[3]["normalizedP"].as_f64().unwrap() - expected.normalized_p).abs() < 1e-9);
    // Another user sees no curve of this print.
    let other = app
        .gql(
            Some(&app.token("mallory")),
            "query($id: ID!) { printer(id: $id) { id } }",
            json!({"id": p.id}),
        )
        .await;
    assert!(other["data"]["printer"].is_null());
}

#[tokio::test]
async fn frames_that_are_not_to_be_judged_never_reach_the_ml_service() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let mut p = printing(&app, &token, "PAUSE").await;
    // Another camera, a viewing boost.
    upload(&app, &p.auth, &[("is_primary_camera", "false")]).await;
    upload(&app, &p.auth, &[("viewing_boost", "true")]).await;
    // Paused (not printing).
    set_printing(&mut p.ws, false).await;
    wait_for(
        &app,
        &token,
        &p.id,
        "status { state { flags { printing } } }",
        |v| v["status"]["state"]["flags"]["printing"] == false,
    )
    .await;
    upload(&app, &p.auth, &[]).await;
    set_printing(&mut p.ws, true).await;
    wait_for(
        &app,
        &token,
        &p.id,
        "status { state { flags { printing } } }",
        |v| v["status"]["state"]["flags"]["printing"] == true,
    )
    .await;
    // Muted.
    app.gql(
        Some(&token),
        "mutation($id: ID!) { muteCurrentPrint(id: $id) { succeeded } }",
        json!({"id": p.id}),
    )
    .await;
    upload(&app, &p.auth, &[]).await;
    app.gql(
        Some(&token),
        "mutation($id: ID!) { muteCurrentPrint(id: $id, mute: false) { succeeded } }",
        json!({"id": p.id}),
    )
    .await;
    // Watching disabled.
    app.gql(
        Some(&token),
        "mutation($id: ID!) { updatePrinter(id: $id, input: {watchingEnabled: false}) { id } }",
        json!({"id": p.id}),
    )
    .await;
    upload(&app, &p.auth, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.seen.lock().unwrap().len(), 0, "nothing was judged");
    // Watching again: the next frame is judged.
    app.gql(
        Some(&token),
        "mutation($id: ID!) { updatePrinter(id: $id, input: {watchingEnabled: true}) { id } }",
        json!({"id": p.id}),
    )
    .await;
    judged_frame(&app, &fake, &p.auth, 1).await;
}

#[tokio::test]
async fn under_the_minimum_interval_a_frame_is_not_judged() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |c| {
        if let Some(d) = &mut c.detection {
            d.settings.min_interval = Duration::from_secs(3600);
        }
    })
    .await;
    let token = app.token("alice");
    let p = printing(&app, &token, "PAUSE").await;
    // The print's start reset the state: that counts as a write.
    upload(&app, &p.auth, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.seen.lock().unwrap().len(), 0);
}

/// The next `commands` frame an agent receives.
async fn next_command(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a command in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v.get("commands").is_some() {
                return v;
            }
        }
    }
}

async fn run_failing_print(
    app: &TestApp,
    fake: &Fake,
    p: &Printer,
    token: &str,
) -> Vec<(Option<String>, Option<String>)> {
    let mut marks = Vec::new();
    for n in 1..=34 {
        fake.script
            .lock()
            .unwrap()
            .push_back(if n <= 30 { 0.0 } else { 2.0 });
        judged_frame(app, fake, &p.auth, n).await;
        let v = wait_for(
            app,
            token,
            &p.id,
            "currentPrint { alertedAt pausedAt }",
            |_| true,
        )
        .await;
        marks.push((
            v["currentPrint"]["alertedAt"].as_str().map(str::to_owned),
            v["currentPrint"]["pausedAt"].as_str().map(str::to_owned),
        ));
    }
    marks
}

#[tokio::test]
async fn a_failing_print_is_alerted_then_paused_once_with_the_system_as_initiator() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let mut p = printing(&app, &token, "PAUSE").await;
    let marks = run_failing_print(&app, &fake, &p, &token).await;
    let mut expected = Prediction::default();
    let mut verdicts = Vec::new();
    for n in 1..=34 {
        let (s, v) = expected.judge(&frame(if n <= 30 { 0.0 } else { 2.0 }), 1.0, None);
        expected = s;
        verdicts.push(v);
    }
    assert_eq!(verdicts[31], Verdict::Alert);
    assert_eq!(verdicts[33], Verdict::Pause);
    assert!(
        marks[..31].iter().all(|m| m.0.is_none()),
        "no alert before frame 32"
    );
    assert!(marks[31].0.is_some(), "frame 32 alerts: {:?}", marks[31]);
    assert_eq!(
        marks[32].0, marks[31].0,
        "frame 33 is within the cooldown and unacknowledged"
    );
    assert!(marks[32].1.is_none());
    assert!(marks[33].1.is_some(), "frame 34 pauses");
    let cmd = next_command(&mut p.ws).await;
    assert_eq!(
        cmd,
        json!({"commands": [{"cmd": "pause", "args": {"retract": 6.5, "lift_z": 2.5, "tools_off": true, "bed_off": false}, "initiator": "system"}]})
    );
    // Once per print: more failing frames pause no more.
    for n in 35..=37 {
        fake.script.lock().unwrap().push_back(2.0);
        judged_frame(&app, &fake, &p.auth, n).await;
    }
    let again = tokio::time::timeout(Duration::from_millis(500), next_command(&mut p.ws)).await;
    assert!(again.is_err(), "a second pause was sent: {again:?}");
}

#[tokio::test]
async fn with_action_none_a_failing_print_is_alerted_and_never_paused() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let mut p = printing(&app, &token, "NONE").await;
    let marks = run_failing_print(&app, &fake, &p, &token).await;
    assert!(marks[31].0.is_some());
    assert!(marks.iter().all(|m| m.1.is_none()), "never paused");
    let none = tokio::time::timeout(Duration::from_millis(500), next_command(&mut p.ws)).await;
    assert!(none.is_err());
}

#[tokio::test]
async fn an_ml_service_that_answers_garbage_or_is_down_changes_nothing() {
    let (fake, ml) = fake_ml().await;
    *fake.garbage.lock().unwrap() = true;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let p = printing(&app, &token, "PAUSE").await;
    judged_frame(&app, &fake, &p.auth, 1).await;
    let v = wait_for(&app, &token, &p.id, "normalizedP", |_| true).await;
    assert_eq!(v["normalizedP"], 0.0);
    let down = app_with_detection("http://127.0.0.1:9", |_| {}).await;
    let token = down.token("bob");
    let p = printing(&down, &token, "PAUSE").await;
    upload(&down, &p.auth, &[]).await; // still 200
    let text = down.metrics().await;
    assert!(text.contains("printgate_ml_errors_total"));
}

#[tokio::test]
async fn the_state_lives_in_the_database_so_another_instance_judges_the_next_frame() {
    let (fake, ml) = fake_ml().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = crate::helpers::fresh_database(dir.path()).await;
    let on = |url: String| {
        let config = detection_config(&ml, None);
        TestApp::spawn_with(Some(url), move |c| c.detection = Some(config))
    };
    let a = on(url.clone()).await;
    let token = a.token("alice");
    let p = printing(&a, &token, "PAUSE").await;
    let script = [0.5, 0.9, 0.2, 1.1];
    for (n, conf) in script[..2].iter().enumerate() {
        fake.script.lock().unwrap().push_back(*conf);
        judged_frame(&a, &fake, &p.auth, n + 1).await;
    }
    // A second instance (or the first, restarted) on the same database.
    let b = on(url).await;
    let mut req = format!("{}/ws/dev/", b.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("bearer {}", p.auth).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.next().await;
    set_printing(&mut ws, true).await;
    wait_for(
        &b,
        &token,
        &p.id,
        "status { state { flags { printing } } }",
        |v| v["status"]["state"]["flags"]["printing"] == true,
    )
    .await;
    for (n, conf) in script[2..].iter().enumerate() {
        fake.script.lock().unwrap().push_back(*conf);
        judged_frame(&b, &fake, &p.auth, n + 3).await;
    }
    let mut expected = Prediction::default();
    for conf in script {
        expected = expected.judge(&frame(conf), 1.0, None).0;
    }
    let want = expected.normalized_p;
    wait_for(&b, &token, &p.id, "normalizedP", |v| {
        (v["normalizedP"].as_f64().unwrap_or(-1.0) - want).abs() < 1e-9
    })
    .await;
}

async fn event_types(app: &TestApp, token: &str, id: &str, args: &str) -> (Vec<String>, Value) {
    let q = format!(
        "query($id: ID!) {{ printer(id: $id) {{ events{args} {{ edges {{ cursor node {{ type class title text print {{ id }} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"
    );
    let b = app.gql(Some(token), &q, json!({"id": id})).await;
    let events = &b["data"]["printer"]["events"];
    let types = events["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|e| e["node"]["type"].as_str().unwrap().to_owned())
        .collect();
    (types, events.clone())
}

#[tokio::test]
async fn the_event_log_records_the_print_lifecycle_and_pages_newest_first() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let mut p = printing(&app, &token, "PAUSE").await;
    let frame = |event: &str| {
        json!({"current_print_ts": 1_700_000_000, "event": {"event_type": event},
               "status": {"_ts": chrono::Utc::now().timestamp_millis() as f64 / 1000.0, "state": {"flags": {"printing": true}}, "job": {"file": {"name": "benchy.gcode"}}}})
    };
    for event in ["PrintPaused", "PrintResumed", "FilamentChange"] {
        p.ws.send(Message::Text(frame(event).to_string().into()))
            .await
            .unwrap();
    }
    // The agent's frames land before the user's actions below.
    for _ in 0..100 {
        if event_types(&app, &token, &p.id, "").await.0.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.gql(
        Some(&token),
        "mutation($id: ID!) { muteCurrentPrint(id: $id) { succeeded } }",
        json!({"id": p.id}),
    )
    .await;
    app.gql(
        Some(&token),
        "mutation($id: ID!) { muteCurrentPrint(id: $id, mute: false) { succeeded } }",
        json!({"id": p.id}),
    )
    .await;
    let posted = app
        .rest(reqwest::Method::POST, "/api/v1/octo/printer_events/", None)
        .header("authorization", format!("Token {}", p.auth))
        .form(&[
            ("event_type", "PRINTER_ERROR"),
            ("event_title", "Thermal runaway"),
            ("event_class", "ERROR"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    tokio::time::sleep(Duration::from_millis(50)).await;
    p.ws.send(Message::Text(json!({"current_print_ts": -1, "status": {"_ts": 2e9, "state": {"flags": {"printing": false}}}}).to_string().into()))
        .await
        .unwrap();
    let want = [
        "ENDED",
        "PRINTER_ERROR",
        "ALERT_UNMUTED",
        "ALERT_MUTED",
        "FILAMENT_CHANGE",
        "RESUMED",
        "PAUSED",
        "STARTED",
    ];
    for _ in 0..100 {
        if event_types(&app, &token, &p.id, "(first: 20)")
            .await
            .0
            .len()
            == want.len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (all, page) = event_types(&app, &token, &p.id, "(first: 20)").await;
    assert_eq!(all, want);
    let ended = &page["edges"][0]["node"];
    assert_eq!(ended["class"], "SUCCESS");
    assert_eq!(ended["title"], "Print Job Finished");
    assert!(ended["print"]["id"].is_string(), "events name their print");
    assert_eq!(page["edges"][3]["node"]["title"], "Watching Turned Off");
    assert_eq!(
        page["edges"][4]["node"]["title"],
        "Filament Change Required"
    );
    // Pages of 3, then the rest after the cursor.
    let (first, page) = event_types(&app, &token, &p.id, "(first: 3)").await;
    assert_eq!(first, want[..3]);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let (rest, page) = event_types(
        &app,
        &token,
        &p.id,
        &format!("(first: 10, after: \"{cursor}\")"),
    )
    .await;
    assert_eq!(rest, want[3..]);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let (only, _) = event_types(&app, &token, &p.id, "(types: [\"PAUSED\", \"RESUMED\"])").await;
    assert_eq!(only, ["RESUMED", "PAUSED"]);
    let bad = app
        .gql(
            Some(&token),
            "query($id: ID!) { printer(id: $id) { events(after: \"nope\") { edges { cursor } } } }",
            json!({"id": p.id}),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_printer_event_subscriber_hears_the_failure_alerts() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let p = printing(&app, &token, "PAUSE").await;
    let mut sub = crate::helpers::graphql_ws(&app.url, None).await;
    crate::helpers::ws_send(
        &mut sub,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(
        crate::helpers::ws_next_json(&mut sub).await["type"],
        "connection_ack"
    );
    crate::helpers::ws_send(
        &mut sub,
        json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription($id: ID) { printerEvent(printerId: $id, types: [\"FAILURE_ALERTED\"]) { type kind class text } }", "variables": {"id": p.id}}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    run_failing_print(&app, &fake, &p, &token).await;
    let first = crate::helpers::ws_next_json(&mut sub).await;
    assert_eq!(
        first["payload"]["data"]["printerEvent"]["class"], "WARNING",
        "{first}"
    );
    let second = crate::helpers::ws_next_json(&mut sub).await;
    let e = &second["payload"]["data"]["printerEvent"];
    assert_eq!(e["type"], "FAILURE_ALERTED");
    assert_eq!(e["kind"], "FAILURE_ALERTED");
    assert_eq!(e["class"], "ERROR");
    assert!(e["text"].as_str().unwrap().contains("was paused"), "{e}");
}

#[tokio::test]
async fn ml_sim_speaks_the_ml_service_contract() {
    let (listener, router) = printgate::mlsim::bind(&printgate::mlsim::MlSimArgs {
        bind: "127.0.0.1:0".into(),
        token: Some("t0k".into()),
    })
    .await
    .unwrap();
    let ml = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    // Two images to judge, served like printgate's snapshot links.
    let images = axum::Router::new()
        .route(
            "/ok.png",
            axum::routing::get(|| async { printgate::simulate::SNAPSHOT_PNG.to_vec() }),
        )
        .route(
            "/failing.png",
            axum::routing::get(|| async { printgate::simulate::failing_snapshot() }),
        );
    let img_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let img = format!("http://{}", img_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(img_listener, images).await });
    let c = reqwest::Client::new();
    let ask = |path: String, token: Option<&'static str>| {
        let mut r = c.get(format!("{ml}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        ask(format!("/p/?img={img}/ok.png"), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(ask("/p/".into(), Some("t0k")).await.unwrap().status(), 422);
    let bad = ask(format!("/p/?img={img}/missing.png"), Some("t0k"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok: Value = ask(format!("/p/?img={img}/ok.png"), Some("t0k"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok, json!({"detections": []}));
    let failing: Value = ask(format!("/p/?img={img}/failing.png"), Some("t0k"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = failing["detections"].as_array().unwrap();
    assert!(
        !d.is_empty()
            && d.iter().all(|x| x[0] == "failure"
                && x[1].as_f64().unwrap() > 0.5
                && x[2].as_array().unwrap().len() == 4)
    );
    assert_eq!(
        ask("/hc/".into(), None)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn the_demo_shows_a_failure_alerted_and_paused_within_a_minute_and_its_receiver_verifies_it()
{
    // The demo runs on its own SQLite file: once per CI run is enough.
    if std::env::var(crate::helpers::PG_ENV).is_ok_and(|u| !u.is_empty()) {
        return;
    }
    let (port, rx_port) = (free_port(), free_port());
    let demo = Spawned::start([
        "demo".to_owned(),
        "--bind".into(),
        format!("127.0.0.1:{port}"),
        "--webhook-url".into(),
        format!("http://127.0.0.1:{rx_port}/webhook"),
    ]);
    // The receiver command it says to run, then the token.
    let command = demo.line_where(60, |l| l.starts_with("printgate webhook-receiver"));
    let token = demo.line_where(60, |l| l.starts_with("eyJ"));
    // Run the command as printed (the binary for `printgate`).
    let receiver = Spawned::start(command.split_whitespace().skip(1));
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut outcome = Value::Null;
    while started.elapsed() < Duration::from_secs(90) {
        let b: Value = c
            .post(format!("{base}/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": "{ printers { status { state { text } } currentPrint { pausedAt } events(types: [\"FAILURE_ALERTED\"]) { edges { node { class } } } } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = b["data"]["printers"][0].clone();
        let paused = first["status"]["state"]["text"] == "Paused"
            && first["currentPrint"]["pausedAt"].is_string();
        let alerted = first["events"]["edges"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["node"]["class"] == "ERROR"));
        if paused && alerted {
            outcome = first;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        !outcome.is_null(),
        "the demo's failing printer was not alerted and paused in 90 s"
    );
    // The failure alert reached the receiver, signed (it prints only what
    // verifies, and nothing it rejected).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut alerted = None;
    while alerted.is_none() && std::time::Instant::now() < deadline {
        if let Some(line) = receiver.next_line(Duration::from_millis(500)) {
            assert!(!line.starts_with("REJECTED"), "{line}");
            if line.starts_with("verified failure.alerted") {
                alerted = Some(line);
            }
        }
    }
    drop(receiver);
    drop(demo);
    let line = alerted.expect("the demo's failure alert reached the printed receiver");
    assert!(line.contains("\"paused\":"), "{line}");
}

#[tokio::test]
async fn a_slow_ml_service_times_out_and_changes_nothing() {
    let (fake, ml) = fake_ml().await;
    *fake.delay.lock().unwrap() = Some(Duration::from_secs(4));
    let app = app_with_detection(&ml, |_| {}).await; // a 2 s ML timeout
    let token = app.token("alice");
    let p = printing(&app, &token, "PAUSE").await;
    fake.script.lock().unwrap().push_back(5.0);
    let started = std::time::Instant::now();
    upload(&app, &p.auth, &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the upload did not wait for the ML service"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = wait_for(
        &app,
        &token,
        &p.id,
        "normalizedP currentPrint { predictions { p } }",
        |_| true,
    )
    .await;
    assert_eq!(v["normalizedP"], 0.0);
    assert_eq!(
        v["currentPrint"]["predictions"],
        json!([]),
        "no frame was judged"
    );
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["status"], "ready",
        "the ML service never makes the server unready"
    );
    assert!(ready["detection"]["ml"].is_string(), "{ready}");
}

#[tokio::test]
async fn without_a_current_print_no_frame_is_judged() {
    let (fake, ml) = fake_ml().await;
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let mut p = printing(&app, &token, "PAUSE").await;
    // The print ends; the printer still says it is printing.
    p.ws.send(Message::Text(json!({"current_print_ts": -1, "status": {"_ts": 2e9, "state": {"flags": {"printing": true}}}}).to_string().into()))
        .await
        .unwrap();
    wait_for(&app, &token, &p.id, "currentPrint { id }", |v| {
        v["currentPrint"].is_null()
    })
    .await;
    upload(&app, &p.auth, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.seen.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_frame_replaced_before_the_ml_service_fetched_it_is_skipped_not_an_ml_error() {
    let (fake, ml) = fake_ml().await;
    *fake.fetch_after.lock().unwrap() = Some(Duration::from_millis(600));
    let app = app_with_detection(&ml, |_| {}).await;
    let token = app.token("alice");
    let p = printing(&app, &token, "PAUSE").await;
    let replaced = |m: &str| {
        m.lines()
            .find(|l| l.contains(r#"reason="replaced""#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = replaced(&app.metrics().await);
    upload(&app, &p.auth, &[]).await;
    // A newer snapshot, while the ML service has not fetched the first yet.
    tokio::time::sleep(Duration::from_millis(100)).await;
    upload(&app, &p.auth, &[]).await;
    for _ in 0..50 {
        if fake.seen.lock().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the second frame waited for the first");
    assert!(
        !seen[0].image_loaded,
        "the first frame's link named the replaced picture"
    );
    assert_eq!(
        replaced(&app.metrics().await),
        before + 1,
        "counted as replaced"
    );
}
