//! Real printer agents over a real websocket: status in, commands out, the
//! print lifecycle, one connection per printer, subscriptions, snapshots.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{SECRET, TestApp, Ws, graphql_ws};

/// A printer of `token`'s user and its agent token.
async fn printer_with_agent_token(app: &TestApp, token: &str) -> (String, String) {
    let body = app
        .gql(
            Some(token),
            "mutation { createPrinter(input: {name: \"Prusa\"}) { id authToken } }",
            json!({}),
        )
        .await;
    let p = &body["data"]["createPrinter"];
    (
        p["id"].as_str().unwrap().to_owned(),
        p["authToken"].as_str().unwrap().to_owned(),
    )
}

async fn connect(app: &TestApp, auth_token: &str) -> Ws {
    let url = format!("{}/ws/dev/", app.url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("bearer {auth_token}").parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake");
    ws
}

/// The next text frame, as JSON (fails after a few seconds).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// Polls until `check` holds on the printer's GraphQL view (or fails).
async fn eventually(
    app: &TestApp,
    token: &str,
    id: &str,
    fields: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let q = format!("query($id: ID!) {{ printer(id: $id) {{ {fields} }} }}");
    for _ in 0..100 {
        let body = app.gql(Some(token), &q, json!({"id": id})).await;
        let p = body["data"]["printer"].clone();
        if check(&p) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition never held for printer {id}");
}

fn status(ts: i64, printing: bool, completion: f64) -> Value {
    json!({
        "_ts": ts,
        "state": {"text": if printing { "Printing" } else { "Operational" }, "flags": {"operational": true, "printing": printing, "paused": false}},
        "progress": {"completion": completion},
        "job": {"file": {"name": if printing { json!("benchy.gcode") } else { Value::Null }}},
        "temperatures": {"tool0": {"actual": 210.0, "target": 215.0}}
    })
}

#[tokio::test]
async fn an_agents_status_shows_up_in_graphql_and_rest() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut ws = connect(&app, &auth).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"remote_status": {"viewing": false, "should_watch": false}})
    );
    send(&mut ws, json!({
        "current_print_ts": -1,
        "event": {"event_type": "PrinterStateChanged", "data": {"state_id": "OPERATIONAL", "state_string": "Operational"}},
        "settings": {"webcams": [{"flipV": true, "rotation": 270}], "agent": {"name": "octoprint_obico", "version": "2.6.1"}},
        "status": status(1_700_000_000, false, 0.0),
    })).await;
    let p = eventually(&app, &token, &id, "agentName agentVersion status { state { text } temperatures { name actual target } raw } settings { webcamFlipV webcamRotate90 }", |p| !p["status"].is_null()).await;
    assert_eq!(p["agentName"], "octoprint_obico");
    assert_eq!(p["agentVersion"], "2.6.1");
    assert_eq!(p["status"]["state"]["text"], "Operational");
    assert_eq!(
        p["status"]["temperatures"],
        json!([{"name": "tool0", "actual": 210.0, "target": 215.0}])
    );
    assert_eq!(
        p["settings"],
        json!({"webcamFlipV": true, "webcamRotate90": true})
    );
    let rest: Value = app
        .rest(
            Method::GET,
            &format!("/api/v1/printers/{id}/"),
            Some(&token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rest["status"],
        status(1_700_000_000, false, 0.0),
        "verbatim"
    );
    assert_eq!(rest["settings"]["agent_name"], "octoprint_obico");

    // A late status (older _ts) never wins; an equal one does.
    send(&mut ws, json!({"status": status(1_699_999_000, true, 5.0)})).await;
    send(
        &mut ws,
        json!({"status": status(1_700_000_000, false, 1.0)}),
    )
    .await;
    eventually(
        &app,
        &token,
        &id,
        "status { progress { completion } }",
        |p| p["status"]["progress"]["completion"] == 1.0,
    )
    .await;

    // The agent goes away: the printer shows offline; settings are kept.
    ws.close(None).await.unwrap();
    let p = eventually(
        &app,
        &token,
        &id,
        "status { raw } settings { webcamFlipV }",
        |p| p["status"].is_null(),
    )
    .await;
    assert_eq!(
        p["settings"]["webcamFlipV"], true,
        "settings survive a reconnect"
    );
}

#[tokio::test]
async fn a_burst_of_statuses_stores_the_last_and_a_disconnect_right_after_clears_it() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    for round in 0..3 {
        let mut ws = connect(&app, &auth).await;
        next_json(&mut ws).await;
        let base = 1_700_000_000 + round * 1000;
        for k in 0..30 {
            send(
                &mut ws,
                json!({"status": status(base + k, true, k as f64 / 2.0)}),
            )
            .await;
        }
        eventually(&app, &token, &id, "status { raw }", |p| {
            p["status"]["raw"]["_ts"] == base + 29
        })
        .await;
        // (Within the agent frame budget: a burst of 200, 20/s.)
        // Statuses then the close, with no pause between: whatever was
        // still waiting to be written must not land after the clear.
        for k in 30..60 {
            send(&mut ws, json!({"status": status(base + k, true, 99.0)})).await;
        }
        ws.close(None).await.unwrap();
        eventually(&app, &token, &id, "status { raw }", |p| {
            p["status"].is_null()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stored = app.stored_printer(&id).await;
        assert!(
            stored.status.is_none() && stored.status_at.is_none(),
            "round {round}: the offline printer keeps no status: {:?}",
            stored.status
        );
    }
}

#[tokio::test]
async fn the_print_lifecycle_follows_current_print_ts_and_events() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut ws = connect(&app, &auth).await;
    next_json(&mut ws).await;
    let ts = 1_700_000_100;
    send(&mut ws, json!({"current_print_ts": ts, "event": {"event_type": "PrintStarted", "data": {"name": "benchy.gcode"}}, "status": status(ts, true, 0.0)})).await;
    let watch = next_json(&mut ws).await;
    assert_eq!(
        watch,
        json!({"remote_status": {"viewing": false, "should_watch": true}}),
        "should_watch changed"
    );
    let p = eventually(
        &app,
        &token,
        &id,
        "currentPrint { id filename } notWatchingReason",
        |p| !p["currentPrint"].is_null(),
    )
    .await;
    assert_eq!(p["currentPrint"]["filename"], "benchy.gcode");
    assert_eq!(p["notWatchingReason"], Value::Null);
    let print_id = p["currentPrint"]["id"].as_str().unwrap().to_owned();
    // The same timestamp again (agents repeat it) is the same print.
    for completion in [10.0, 20.0] {
        send(
            &mut ws,
            json!({"current_print_ts": ts, "status": status(ts + 10, true, completion)}),
        )
        .await;
    }
    eventually(
        &app,
        &token,
        &id,
        "status { progress { completion } }",
        |p| p["status"]["progress"]["completion"] == 20.0,
    )
    .await;
    let prints = entity::print::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(prints.len(), 1, "no duplicate print");

    send(&mut ws, json!({"current_print_ts": ts, "event": {"event_type": "PrintCancelled"}, "status": status(ts + 20, false, 20.0)})).await;
    let p = eventually(
        &app,
        &token,
        &id,
        "currentPrint { id cancelledAt endedAt }",
        |p| p["currentPrint"]["cancelledAt"].is_string(),
    )
    .await;
    assert_eq!(
        p["currentPrint"]["id"],
        print_id.as_str(),
        "stays current until -1"
    );
    send(
        &mut ws,
        json!({"current_print_ts": -1, "status": status(ts + 30, false, 0.0)}),
    )
    .await;
    eventually(&app, &token, &id, "currentPrint { id } normalizedP", |p| {
        p["currentPrint"].is_null()
    })
    .await;
    let stored = app.stored_print(print_id.parse().unwrap()).await;
    assert!(stored.cancelled_at.is_some());
    assert!(
        stored.finished_at.is_none(),
        "a cancelled print is not finished"
    );

    // A new print that completes.
    let ts2 = ts + 1000;
    send(
        &mut ws,
        json!({"current_print_ts": ts2, "status": status(ts2, true, 0.0)}),
    )
    .await;
    eventually(&app, &token, &id, "currentPrint { id }", |p| {
        !p["currentPrint"].is_null()
    })
    .await;
    send(&mut ws, json!({"current_print_ts": ts2, "event": {"event_type": "PrintDone"}, "status": status(ts2 + 5, false, 100.0)})).await;
    eventually(&app, &token, &id, "currentPrint { id }", |p| {
        p["currentPrint"].is_null()
    })
    .await;
    let done = entity::print::Entity::find().all(&app.db).await.unwrap();
    let second = done.iter().find(|p| p.ext_id == ts2).unwrap();
    assert!(second.finished_at.is_some() && second.cancelled_at.is_none());
}

#[tokio::test]
async fn a_pause_reaches_the_agent_as_the_exact_frame_and_fails_once_it_is_gone() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut ws = connect(&app, &auth).await;
    next_json(&mut ws).await;
    let ts = 1_700_000_200;
    send(
        &mut ws,
        json!({"current_print_ts": ts, "status": status(ts, true, 0.0)}),
    )
    .await;
    next_json(&mut ws).await; // remote_status: should_watch now true
    eventually(&app, &token, &id, "currentPrint { id }", |p| {
        !p["currentPrint"].is_null()
    })
    .await;

    let pause = app.gql(
        Some(&token),
        "mutation($id: ID!) { pausePrint(id: $id) { succeeded } }",
        json!({"id": id}),
    );
    let (body, frame) = tokio::join!(pause, next_json(&mut ws));
    assert_eq!(body["data"]["pausePrint"]["succeeded"], true, "{body}");
    assert_eq!(
        frame,
        json!({"commands": [{"cmd": "pause", "args": {"retract": 6.5, "lift_z": 2.5, "tools_off": true, "bed_off": false}, "initiator": "api"}]})
    );
    let rest = app
        .rest(
            Method::POST,
            &format!("/api/v1/printers/{id}/cancel_print"),
            Some(&token),
        )
        .send();
    let (resp, frame) = tokio::join!(rest, next_json(&mut ws));
    let resp: Value = resp.unwrap().json().await.unwrap();
    assert_eq!(resp["succeeded"], true);
    assert_eq!(
        frame,
        json!({"commands": [{"cmd": "cancel", "args": {}, "initiator": "api"}]})
    );

    // Muting changes should_watch: the agent hears it.
    app.gql(
        Some(&token),
        "mutation($id: ID!) { muteCurrentPrint(id: $id) { succeeded } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"remote_status": {"viewing": false, "should_watch": false}})
    );

    ws.close(None).await.unwrap();
    eventually(&app, &token, &id, "status { raw }", |p| {
        p["status"].is_null()
    })
    .await;
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { resumePrint(id: $id) { succeeded } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        body["data"]["resumePrint"]["succeeded"], false,
        "the agent is gone"
    );
}

#[tokio::test]
async fn a_second_connection_closes_the_first_with_4321() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut first = connect(&app, &auth).await;
    next_json(&mut first).await;
    let mut second = connect(&app, &auth).await;
    next_json(&mut second).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), first.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed, 4321);
    // The second connection is the live one: it still gets commands and its
    // status still counts.
    send(
        &mut second,
        json!({"status": status(1_700_000_300, false, 0.0)}),
    )
    .await;
    eventually(&app, &token, &id, "status { ts }", |p| {
        p["status"]["ts"] == 1_700_000_300.0
    })
    .await;
}

#[tokio::test]
async fn unknown_archived_and_deleted_tokens_are_refused_at_the_handshake() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let url = format!("{}/ws/dev/", app.url.replace("http://", "ws://"));
    let attempt = |t: String| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("bearer {t}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    assert!(attempt("nope".into()).await.is_err());
    app.gql(
        Some(&token),
        "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    assert!(attempt(auth.clone()).await.is_err(), "archived");
    app.gql(
        Some(&token),
        "mutation($id: ID!) { unarchivePrinter(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let mut ws = connect(&app, &auth).await;
    next_json(&mut ws).await;
    app.gql(
        Some(&token),
        "mutation($id: ID!) { deletePrinter(id: $id) }",
        json!({"id": id}),
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                return true;
            }
        }
        true
    })
    .await
    .unwrap();
    assert!(closed, "deleting the printer closes its agent's connection");
    assert!(attempt(auth).await.is_err(), "deleted");
}

#[tokio::test]
async fn garbage_frames_change_nothing_and_keep_the_connection() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut ws = connect(&app, &auth).await;
    next_json(&mut ws).await;
    send(
        &mut ws,
        json!({"status": status(1_700_000_400, false, 3.0)}),
    )
    .await;
    eventually(&app, &token, &id, "status { ts }", |p| {
        !p["status"].is_null()
    })
    .await;
    let before = app.stored_printer(&id).await;
    ws.send(Message::Text("this is not json".into()))
        .await
        .unwrap();
    for bad in [
        json!([1, 2]),
        json!({"status": "printing"}),
        json!({"current_print_ts": "soon", "status": {}}),
        json!({"prediction": {"normalized_p": "high"}}),
    ] {
        send(&mut ws, bad).await;
    }
    ws.send(Message::Text(
        format!("{{\"status\": \"{}\"}}", "x".repeat(600 * 1024)).into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(vec![0, 1, 2].into()))
        .await
        .unwrap();
    send(&mut ws, json!({"passthru": {"ref": "abc", "ret": "ok"}})).await;
    // Agents never send predictions: such a frame changes nothing (it
    // does not even clear the status, as a status frame without one would).
    send(&mut ws, json!({"prediction": {"normalized_p": 0.75}})).await;
    // A frame after the garbage still applies: the connection survived.
    send(
        &mut ws,
        json!({"status": status(1_700_000_400, false, 3.0), "settings": {"agent": {"name": "after", "version": "1"}}}),
    )
    .await;
    eventually(&app, &token, &id, "agentName", |p| {
        p["agentName"] == "after"
    })
    .await;
    let after = app.stored_printer(&id).await;
    assert_eq!(after.status, before.status);
    assert_eq!(after.status_ts, before.status_ts);
    assert_eq!(after.current_print_id, before.current_print_id);
    assert_eq!(after.normalized_p, 0.0, "a prediction frame moved nothing");
}

/// A graphql-transport-ws subscriber to `printerUpdated` (all printers).
async fn subscriber(app: &TestApp, token: &str) -> Ws {
    let mut ws = graphql_ws(&app.url, None).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    send(&mut ws, json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { printerUpdated { id name status { progress { completion } } } }"}})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws
}

#[tokio::test]
async fn subscribers_see_each_update_once_and_never_another_users_printer() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let (id, auth) = printer_with_agent_token(&app, &alice).await;
    let _bobs_own = printer_with_agent_token(&app, &bob).await;
    let mut alice_sub = subscriber(&app, &alice).await;
    let mut bob_sub = subscriber(&app, &bob).await;
    let mut agent = connect(&app, &auth).await;
    next_json(&mut agent).await;
    // The connection itself is an event (the printer came online).
    let online = next_json(&mut alice_sub).await;
    assert_eq!(
        online["payload"]["data"]["printerUpdated"]["id"],
        id.as_str(),
        "{online}"
    );
    for (i, completion) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        send(
            &mut agent,
            json!({"status": status(1_700_000_500 + i as i64, true, completion)}),
        )
        .await;
        let msg = next_json(&mut alice_sub).await;
        assert_eq!(msg["type"], "next");
        assert_eq!(
            msg["payload"]["data"]["printerUpdated"]["status"]["progress"]["completion"],
            completion,
            "{msg}"
        );
    }
    app.gql(
        Some(&alice),
        "mutation($id: ID!) { updatePrinter(id: $id, input: {name: \"Renamed\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let renamed = next_json(&mut alice_sub).await;
    assert_eq!(
        renamed["payload"]["data"]["printerUpdated"]["name"],
        "Renamed"
    );
    // Nothing else is queued for Alice, and Bob heard nothing at all.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), alice_sub.next())
            .await
            .is_err(),
        "each update once"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bob_sub.next())
            .await
            .is_err(),
        "never another user's printer"
    );
}

#[tokio::test]
async fn subscribing_to_someone_elses_printer_is_not_found() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let (id, _) = printer_with_agent_token(&app, &alice).await;
    let bob = format!("Bearer {}", app.token("bob"));
    let mut ws = graphql_ws(&app.url, Some(&bob)).await;
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    send(&mut ws, json!({"id": "1", "type": "subscribe", "payload": {"query": format!("subscription {{ printerUpdated(id: \"{id}\") {{ id }} }}")}})).await;
    let msg = next_json(&mut ws).await;
    // An execution error travels as a `next` payload with `errors`.
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["payload"]["data"], Value::Null);
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{msg}"
    );
}

/// The smallest JPEG-looking bytes: the magic number and some payload.
fn jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend_from_slice(&[7u8; 256]);
    v
}

#[tokio::test]
async fn snapshots_get_signed_urls_that_load_without_headers_and_expire() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let post = |bytes: Vec<u8>, auth: &str| {
        let form = reqwest::multipart::Form::new()
            .part(
                "pic",
                reqwest::multipart::Part::bytes(bytes).file_name("snap.jpg"),
            )
            .text("is_primary_camera", "true");
        app.rest(Method::POST, "/api/v1/octo/pic/", None)
            .header("authorization", format!("Token {auth}"))
            .multipart(form)
            .send()
    };
    let resp = post(b"hello, not an image".to_vec(), &auth).await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post(jpeg(), "wrong").await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid or inactive token."})
    );
    let resp = post(vec![0xFF; 6 * 1024 * 1024], &auth).await.unwrap();
    assert_eq!(resp.status(), 413);
    let p = app
        .gql(
            Some(&token),
            "query($id: ID!) { printer(id: $id) { pic { imgUrl } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        p["data"]["printer"]["pic"],
        Value::Null,
        "refused pictures stored nothing"
    );

    let resp = post(jpeg(), &auth).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"result": "ok"}));
    let p = app
        .gql(
            Some(&token),
            "query($id: ID!) { printer(id: $id) { pic { imgUrl } } }",
            json!({"id": id}),
        )
        .await;
    let url = p["data"]["printer"]["pic"]["imgUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let img = reqwest::get(format!("{}{url}", app.url)).await.unwrap();
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/jpeg");
    assert_eq!(img.bytes().await.unwrap().to_vec(), jpeg());

    let tampered = url.replace(&format!("/snapshots/{id}.jpg"), "/snapshots/999.jpg");
    assert_eq!(
        reqwest::get(format!("{}{tampered}", app.url))
            .await
            .unwrap()
            .status(),
        403
    );
    let bad_sig = format!("{}0", url);
    assert_eq!(
        reqwest::get(format!("{}{bad_sig}", app.url))
            .await
            .unwrap()
            .status(),
        403
    );
    // A URL signed long ago has expired.
    let keys = printgate::auth::JwtKeys::from_secret(SECRET.as_bytes());
    let signer = printgate::urls::UrlSigner::new(keys.url_key().to_vec(), "");
    let taken = app.stored_printer(&id).await.pic_at.unwrap();
    let old = signer.sign(
        id.parse().unwrap(),
        taken,
        chrono::Utc::now() - chrono::Duration::hours(2),
    );
    assert_eq!(
        reqwest::get(format!("{}{old}", app.url))
            .await
            .unwrap()
            .status(),
        403
    );
    let fresh = signer.sign(id.parse().unwrap(), taken, chrono::Utc::now());
    assert_eq!(
        reqwest::get(format!("{}{fresh}", app.url))
            .await
            .unwrap()
            .status(),
        200,
        "the same key signs valid links"
    );
}

#[tokio::test]
async fn the_agent_http_endpoints_answer_as_obico_does() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let me: Value = app
        .rest(Method::GET, "/api/v1/octo/printer/", None)
        .header("authorization", format!("Token {auth}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["is_pro"], true);
    assert_eq!(me["printer"]["id"].to_string(), id);
    assert_eq!(me["printer"]["retract_on_pause"], 6.5);
    let bad = app
        .rest(Method::GET, "/api/v1/octo/printer/", None)
        .header("authorization", "Token nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    let file = |sig: &'static str| {
        app.rest(Method::POST, "/api/v1/octo/g_code_files/", None)
            .header("authorization", format!("Token {auth}"))
            .form(&[
                ("filename", "benchy.gcode"),
                ("safe_filename", "benchy.gcode"),
                ("num_bytes", "1234"),
                ("agent_signature", sig),
            ])
            .send()
    };
    let a: Value = file("ts:1").await.unwrap().json().await.unwrap();
    let b: Value = file("ts:1").await.unwrap().json().await.unwrap();
    let c: Value = file("ts:2").await.unwrap().json().await.unwrap();
    assert!(a["id"].is_number());
    assert_eq!(a, b, "the same file gets the same id");
    assert_ne!(a, c);

    let ev = app
        .rest(Method::POST, "/api/v1/octo/printer_events/", None)
        .header("authorization", format!("Token {auth}"))
        .form(&[
            ("event_type", "FILAMENT_CHANGE"),
            ("event_title", "Filament change"),
            ("event_class", "WARNING"),
        ])
        .send()
        .await
        .unwrap();
    assert!(ev.status().is_success());
    let stored = entity::printer_event::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "FILAMENT_CHANGE");
    let other = app
        .rest(Method::PATCH, "/api/v1/octo/printer/", None)
        .header("authorization", format!("Token {auth}"))
        .send()
        .await
        .unwrap();
    assert!(
        other.status().is_client_error(),
        "other agent paths are a plain 4xx, never a 5xx"
    );
}

use sea_orm::EntityTrait;

#[tokio::test]
async fn the_simulator_creates_printers_within_the_batch_limit() {
    let app = TestApp::spawn().await;
    let jwt = app.token("sim");
    let tokens = printgate::simulate::create_printers(&app.client, &app.url, &jwt, 25)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 25);
    assert_eq!(app.printer_rows().await, 25);
}

// What an agent (or a stolen agent token) must not be able to do: fill
// the disk, overflow the server, keep writing for a removed printer.

async fn count<E>(app: &TestApp, _e: E) -> u64
where
    E: sea_orm::EntityTrait,
    E::Model: Sync,
{
    use sea_orm::PaginatorTrait;
    E::find().count(&app.db).await.unwrap()
}

#[tokio::test]
async fn oversized_event_bodies_get_413_and_long_fields_are_cut() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (_, auth) = printer_with_agent_token(&app, &token).await;
    let post = |form: reqwest::multipart::Form| {
        app.rest(Method::POST, "/api/v1/octo/printer_events/", None)
            .header("authorization", format!("Token {auth}"))
            .multipart(form)
            .send()
    };
    let big = reqwest::multipart::Form::new()
        .text("event_type", "PRINTER_ERROR")
        .text("event_text", "x".repeat(100 * 1024));
    assert_eq!(post(big).await.unwrap().status(), 413);
    let urlencoded = app
        .rest(Method::POST, "/api/v1/octo/printer_events/", None)
        .header("authorization", format!("Token {auth}"))
        .form(&[
            ("event_type", "PRINTER_ERROR"),
            ("event_text", &"y".repeat(5 * 1024 * 1024)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(urlencoded.status(), 413);
    assert_eq!(
        count(&app, entity::printer_event::Entity).await,
        0,
        "nothing stored"
    );
    // A real agent's event with a snapshot is accepted; the picture is not
    // kept, and long text is cut to its cap.
    let with_pic = reqwest::multipart::Form::new()
        .text("event_type", "FILAMENT_CHANGE")
        .text("event_title", "t".repeat(2000))
        .text("event_text", "bad\u{0}text")
        .part(
            "snapshot",
            reqwest::multipart::Part::bytes(vec![0xFFu8; 1024 * 1024]).file_name("s.jpg"),
        );
    assert_eq!(post(with_pic).await.unwrap().status(), 201);
    use sea_orm::EntityTrait;
    let stored = entity::printer_event::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.event_title.unwrap().chars().count(), 512);
    assert_eq!(stored.event_text.as_deref(), Some("badtext"));
}

#[tokio::test]
async fn a_g_code_file_reported_many_times_at_once_is_one_record() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (_, auth) = printer_with_agent_token(&app, &token).await;
    let posts = (0..10).map(|_| {
        app.rest(Method::POST, "/api/v1/octo/g_code_files/", None)
            .header("authorization", format!("Token {auth}"))
            .form(&[
                ("filename", "benchy.gcode"),
                ("safe_filename", "benchy.gcode"),
                ("agent_signature", "ts:1"),
            ])
            .send()
    });
    let answers = futures_util::future::join_all(posts).await;
    let mut ids = std::collections::HashSet::new();
    for a in answers {
        let a = a.unwrap();
        assert_eq!(a.status(), 200);
        let b: Value = a.json().await.unwrap();
        ids.insert(b["id"].to_string());
    }
    assert_eq!(ids.len(), 1, "one id: {ids:?}");
    assert_eq!(count(&app, entity::g_code_file::Entity).await, 1);
}

#[tokio::test]
async fn retention_prunes_old_events_files_and_snapshots_and_caps_events_per_printer() {
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, _) = printer_with_agent_token(&app, &token).await;
    let printer_id: i32 = id.parse().unwrap();
    let old = chrono::Utc::now() - chrono::Duration::days(200);
    let new = chrono::Utc::now();
    for at in [old, new] {
        entity::printer_event::ActiveModel {
            printer_id: Set(printer_id),
            event_type: Set("PRINTER_ERROR".into()),
            created_at: Set(at),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    entity::g_code_file::ActiveModel {
        printer_id: Set(printer_id),
        filename: Set("a".into()),
        safe_filename: Set("a".into()),
        agent_signature: Set("s".into()),
        created_at: Set(old),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap();
    entity::snapshot::ActiveModel {
        printer_id: Set(printer_id),
        content_type: Set("image/jpeg".into()),
        data: Set(vec![1, 2, 3]),
        taken_at: Set(old),
    }
    .insert(&app.db)
    .await
    .unwrap();
    let service = printgate::service::Service::new(
        app.db.clone(),
        std::sync::Arc::new(printgate::service::NoAgents),
        std::sync::Arc::new(printgate::events::LocalBus::default()),
    );
    let pruned = service
        .prune(Duration::from_secs(90 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(pruned, 3, "the old event, file record and snapshot");
    assert_eq!(count(&app, entity::printer_event::Entity).await, 1);
    assert_eq!(count(&app, entity::snapshot::Entity).await, 0);
    for _ in 0..30 {
        entity::printer_event::ActiveModel {
            printer_id: Set(printer_id),
            event_type: Set("E".into()),
            created_at: Set(new),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    assert_eq!(service.trim_events(printer_id, 10).await.unwrap(), 21);
    assert_eq!(count(&app, entity::printer_event::Entity).await, 10);
}

#[tokio::test]
async fn an_archived_printers_live_session_is_closed_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut ws = connect(&app, &auth).await;
    next_json(&mut ws).await; // remote_status
    send(&mut ws, json!({"status": status(1, false, 0.0)})).await;
    eventually(&app, &token, &id, "status { state { text } }", |p| {
        p["status"]["state"]["text"] == "Operational"
    })
    .await;
    app.gql(
        Some(&token),
        "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let before = app.stored_printer(&id).await;
    let _ = ws
        .send(Message::Text(
            json!({"status": status(2, true, 50.0)}).to_string().into(),
        ))
        .await;
    assert_eq!(crate::helpers::close_code(&mut ws, 5).await, Some(1000));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = app.stored_printer(&id).await;
    assert_eq!(
        after.status, before.status,
        "no status written after archiving"
    );
    assert!(after.current_print_id.is_none());
}

#[tokio::test]
async fn absurd_print_timestamps_start_nothing_and_nul_characters_are_stripped() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (id, auth) = printer_with_agent_token(&app, &token).await;
    let mut ws = connect(&app, &auth).await;
    next_json(&mut ws).await;
    let mut s = status(1, true, 10.0);
    s["state"]["text"] = json!("Print\u{0}ing");
    for ts in [i64::MIN, i64::MAX, 1] {
        send(&mut ws, json!({"current_print_ts": ts, "status": s})).await;
    }
    let p = eventually(
        &app,
        &token,
        &id,
        "status { state { text } } currentPrint { id }",
        |p| p["status"]["state"]["text"] == "Printing",
    )
    .await;
    assert!(
        p["currentPrint"].is_null(),
        "no print from an absurd timestamp: {p}"
    );
    // The connection is still up and a real timestamp starts a print.
    send(
        &mut ws,
        json!({"current_print_ts": 1_700_000_000, "status": status(2, true, 10.0)}),
    )
    .await;
    eventually(&app, &token, &id, "currentPrint { id }", |p| {
        p["currentPrint"].is_object()
    })
    .await;
}
