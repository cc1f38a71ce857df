//! The fleet view: `printers(filter, orderBy)` and `fleet` agree with each
//! other and with what the agents report, the typed state and presence
//! follow the agents, every cached part of a printer carries an id, and
//! `printerChanged` says what happened (DELETED included) and coalesces.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, Ws, agent_ws, error_code, graphql_ws, ws_next_json, ws_send};

/// Creates a printer and returns its id and agent token.
async fn printer(app: &TestApp, token: &str, name: &str) -> (String, String) {
    let b = app
        .gql(
            Some(token),
            "mutation($n: String!) { createPrinter(input: {name: $n}) { id authToken } }",
            json!({"n": name}),
        )
        .await;
    let p = &b["data"]["createPrinter"];
    (
        p["id"].as_str().unwrap().to_owned(),
        p["authToken"].as_str().unwrap().to_owned(),
    )
}

/// A status frame with these flags, and `left` seconds to go.
fn status(text: &str, flags: Value, left: Option<f64>) -> Value {
    json!({"status": {
        "_ts": chrono::Utc::now().timestamp(),
        "state": {"text": text, "flags": flags},
        "progress": {"completion": 40.0, "printTimeLeft": left},
        "temperatures": {"tool0": {"actual": 210.0, "target": 210.0}, "bed": {"actual": 60.0, "target": 60.0}},
    }})
}

/// Connects printer `auth`'s agent and sends `frame`.
async fn live(app: &TestApp, auth: &str, frame: Value) -> Ws {
    let mut ws = agent_ws(&app.url, auth).await;
    ws_send(&mut ws, frame).await;
    ws
}

/// Polls until every printer of the user shows the state wanted.
async fn until_states(app: &TestApp, token: &str, want: &BTreeMap<String, &str>) {
    let started = Instant::now();
    loop {
        let b = app
            .gql(Some(token), "{ printers { id state } }", json!({}))
            .await;
        let seen: BTreeMap<String, String> = b["data"]["printers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if want
            .iter()
            .all(|(id, s)| seen.get(id).map(String::as_str) == Some(*s))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "states {seen:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn fleet_counts_and_filters_agree_with_the_list_and_the_agents() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let (a, a_auth) = printer(&app, &alice, "Prusa A").await;
    let (b, b_auth) = printer(&app, &alice, "prusa B").await;
    let (paused, p_auth) = printer(&app, &alice, "Voron").await;
    let (idle, i_auth) = printer(&app, &alice, "Ender").await;
    let (broken, e_auth) = printer(&app, &alice, "Broken").await;
    let (off, _) = printer(&app, &alice, "Offline 50%_").await;
    let (old, _) = printer(&app, &alice, "Old").await;
    let archived = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
            json!({"id": old}),
        )
        .await;
    assert!(archived["errors"].is_null(), "{archived}");
    let (_, bob_auth) = printer(&app, &bob, "Bob's").await;
    let printing = json!({"printing": true, "operational": true});
    let _agents = [
        live(
            &app,
            &a_auth,
            status("Printing", printing.clone(), Some(600.0)),
        )
        .await,
        live(
            &app,
            &b_auth,
            status("Printing", printing.clone(), Some(7200.0)),
        )
        .await,
        live(
            &app,
            &p_auth,
            status(
                "Paused",
                json!({"paused": true, "operational": true}),
                Some(900.0),
            ),
        )
        .await,
        live(
            &app,
            &i_auth,
            status(
                "Operational",
                json!({"operational": true, "ready": true}),
                None,
            ),
        )
        .await,
        live(
            &app,
            &e_auth,
            status(
                "Error: thermal runaway",
                json!({"error": true, "closedOrError": true}),
                None,
            ),
        )
        .await,
        live(&app, &bob_auth, status("Printing", printing, Some(60.0))).await,
    ];
    // Prusa A's print has a failure alert nobody answered.
    app.start_print(&a, true).await;
    let want: BTreeMap<String, &str> = [
        (a.clone(), "PRINTING"),
        (b.clone(), "PRINTING"),
        (paused.clone(), "PAUSED"),
        (idle.clone(), "OPERATIONAL"),
        (broken.clone(), "ERROR"),
        (off.clone(), "OFFLINE"),
    ]
    .into_iter()
    .collect();
    until_states(&app, &alice, &want).await;

    let body = app
        .gql(
            Some(&alice),
            "{ fleet { id total online offline printing paused alerting finishingWithinHour byState { state count } }
               printers { id name state online lastSeenAt } }",
            json!({}),
        )
        .await;
    let fleet = &body["data"]["fleet"];
    assert_eq!(fleet["total"], 6, "{fleet}");
    assert_eq!(fleet["online"], 5, "{fleet}");
    assert_eq!(fleet["offline"], 1, "{fleet}");
    assert_eq!(fleet["printing"], 2, "{fleet}");
    assert_eq!(fleet["paused"], 1, "{fleet}");
    assert_eq!(fleet["alerting"], 1, "{fleet}");
    assert_eq!(fleet["finishingWithinHour"], 1, "{fleet}");
    // Every state's count is the list's.
    let list = body["data"]["printers"].as_array().unwrap();
    let by_state = fleet["byState"].as_array().unwrap();
    assert_eq!(by_state.len(), 11, "every state is listed: {fleet}");
    for s in by_state {
        let state = s["state"].as_str().unwrap();
        let in_list = list.iter().filter(|p| p["state"] == state).count();
        assert_eq!(s["count"], in_list, "{state}: {fleet}");
        let filtered = app
            .gql(
                Some(&alice),
                "query($s: [PrinterState!]) { printers(filter: {states: $s}) { id state } }",
                json!({"s": [state]}),
            )
            .await;
        let got = ids(&filtered["data"]["printers"]);
        let expected: Vec<String> = list
            .iter()
            .filter(|p| p["state"] == state)
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got, expected, "filter {state}");
    }
    for p in list {
        let online = p["id"] != off.as_str();
        assert_eq!(p["online"], online, "{p}");
        assert_eq!(p["lastSeenAt"].is_string(), online, "{p}");
    }

    let q = |filter: Value, order: Value| {
        let app = &app;
        let alice = alice.clone();
        async move {
            let b = app
                .gql(
                    Some(&alice),
                    "query($f: PrinterFilter, $o: PrinterOrder) { printers(filter: $f, orderBy: $o) { id name } }",
                    json!({"f": filter, "o": order}),
                )
                .await;
            assert!(b["errors"].is_null(), "{b}");
            b["data"]["printers"].clone()
        }
    };
    assert_eq!(
        ids(&q(json!({"online": false}), Value::Null).await),
        vec![off.clone()]
    );
    assert_eq!(
        ids(&q(json!({"nameContains": "PRUSA"}), Value::Null).await),
        vec![a.clone(), b.clone()]
    );
    // LIKE's wildcards are text.
    assert_eq!(
        ids(&q(json!({"nameContains": "50%_"}), Value::Null).await),
        vec![off.clone()]
    );
    assert!(ids(&q(json!({"nameContains": "%"}), Value::Null).await).len() == 1);
    assert_eq!(
        ids(&q(
            json!({"states": ["PRINTING", "PAUSED"], "online": true}),
            Value::Null
        )
        .await),
        vec![a.clone(), b.clone(), paused.clone()]
    );
    let by_name: Vec<String> = q(Value::Null, json!({"field": "NAME"}))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        by_name,
        [
            "Broken",
            "Ender",
            "Offline 50%_",
            "Prusa A",
            "prusa B",
            "Voron"
        ]
    );
    let soonest = ids(&q(Value::Null, json!({"field": "FINISHES_AT"})).await);
    assert_eq!(&soonest[..3], [a.clone(), paused.clone(), b.clone()]);
    let latest = ids(&q(
        Value::Null,
        json!({"field": "FINISHES_AT", "direction": "DESC"}),
    )
    .await);
    assert_eq!(&latest[..3], [b.clone(), paused.clone(), a.clone()]);
    // Every order is total (ties by id, in the order's direction).
    let mut reversed = ids(&q(Value::Null, Value::Null).await);
    reversed.reverse();
    for field in ["ID", "CREATED_AT"] {
        let desc = ids(&q(Value::Null, json!({"field": field, "direction": "DESC"})).await);
        assert_eq!(desc, reversed, "{field} DESC");
    }
    // Archived printers only when asked for, and never counted.
    let with_archived = app
        .gql(
            Some(&alice),
            "{ printers(withArchived: true, filter: {online: false}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ids(&with_archived["data"]["printers"]),
        vec![off.clone(), old.clone()]
    );

    // Bob's fleet is his alone.
    let bobs = app
        .gql(Some(&bob), "{ fleet { total printing } }", json!({}))
        .await;
    assert_eq!(bobs["data"]["fleet"], json!({"total": 1, "printing": 1}));

    let long = "x".repeat(257);
    let refused = app
        .gql(
            Some(&alice),
            "query($n: String) { printers(filter: {nameContains: $n}) { id } }",
            json!({"n": long}),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["field"], "nameContains",
        "{refused}"
    );
}

#[tokio::test]
async fn every_part_of_a_printer_a_client_caches_has_an_id_and_flags_are_never_null() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let (id, auth) = printer(&app, &alice, "P").await;
    // No flags but `printing`: the others read false, not null.
    let _agent = live(
        &app,
        &auth,
        status("Printing", json!({"printing": true}), Some(60.0)),
    )
    .await;
    until_states(
        &app,
        &alice,
        &[(id.clone(), "PRINTING")].into_iter().collect(),
    )
    .await;
    let b = app
        .gql(
            Some(&alice),
            "query($id: ID!) { printer(id: $id) { id settings { id } status { id collectedAt state { id text flags { id printing paused error closedOrError } } progress { id completion } temperatures { id name } } } }",
            json!({"id": id}),
        )
        .await;
    let p = &b["data"]["printer"];
    let s = &p["status"];
    for part in [
        &p["settings"],
        s,
        &s["state"],
        &s["state"]["flags"],
        &s["progress"],
    ] {
        assert_eq!(part["id"], id.as_str(), "{b}");
    }
    assert_eq!(
        s["state"]["flags"],
        json!({"id": id, "printing": true, "paused": false, "error": false, "closedOrError": false})
    );
    let heaters: Vec<&str> = s["temperatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(heaters, [format!("{id}:bed"), format!("{id}:tool0")]);
    assert!(s["collectedAt"].is_string(), "{b}");
}

/// A `printerChanged` subscriber as `token`, on `query`.
async fn subscriber(app: &TestApp, token: &str, query: &str, variables: Value) -> Ws {
    let mut ws = graphql_ws(&app.url, Some(&format!("Bearer {token}"))).await;
    ws_send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(ws_next_json(&mut ws).await["type"], "connection_ack");
    ws_send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
    ws
}

/// The next `printerChanged` payload.
async fn change(ws: &mut Ws) -> Value {
    let m = ws_next_json(ws).await;
    assert_eq!(m["type"], "next", "{m}");
    m["payload"]["data"]["printerChanged"].clone()
}

#[tokio::test]
async fn printer_changed_says_created_updated_archived_and_deleted() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let q = "subscription { printerChanged { kind printerId printer { id name archivedAt } } }";
    let mut ws = subscriber(&app, &alice, q, json!({})).await;
    let mut bobs = subscriber(&app, &bob, q, json!({})).await;
    // The subscription is live once a change arrives on a fresh printer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = app.create_printer(&alice, "P").await;
    let c = change(&mut ws).await;
    assert_eq!(c["kind"], "CREATED", "{c}");
    assert_eq!(c["printer"]["name"], "P", "{c}");
    app.gql(
        Some(&alice),
        "mutation($id: ID!) { updatePrinter(id: $id, input: {name: \"Q\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let c = change(&mut ws).await;
    assert_eq!(
        (c["kind"].as_str(), c["printer"]["name"].as_str()),
        (Some("UPDATED"), Some("Q")),
        "{c}"
    );
    app.gql(
        Some(&alice),
        "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let c = change(&mut ws).await;
    assert_eq!(c["kind"], "ARCHIVED", "{c}");
    assert!(c["printer"]["archivedAt"].is_string(), "{c}");
    let deleted = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { deletePrinter(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert!(deleted["errors"].is_null(), "{deleted}");
    let c = change(&mut ws).await;
    assert_eq!(
        c,
        json!({"kind": "DELETED", "printerId": id, "printer": null})
    );
    // Bob heard nothing of it.
    let quiet = tokio::time::timeout(Duration::from_millis(500), ws_next_json(&mut bobs)).await;
    assert!(quiet.is_err(), "bob heard {quiet:?}");

    let mut bad = subscriber(
        &app,
        &alice,
        "subscription { printerChanged(minIntervalMs: 0) { kind } }",
        json!({}),
    )
    .await;
    let m = ws_next_json(&mut bad).await;
    let e = &m["payload"]["errors"][0];
    assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{m}");
    assert_eq!(e["extensions"]["field"], "minIntervalMs", "{m}");
}

#[tokio::test]
async fn coalescing_sends_at_most_one_update_per_interval_and_the_newest_last() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let (id, auth) = printer(&app, &alice, "P").await;
    let q = "subscription($id: ID, $ms: Int) { printerChanged(id: $id, minIntervalMs: $ms) { kind printer { status { progress { completion } } } } }";
    let mut slow = subscriber(&app, &alice, q, json!({"id": id, "ms": 500})).await;
    let mut every = subscriber(&app, &alice, q, json!({"id": id})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut agent = agent_ws(&app.url, &auth).await;
    let started = Instant::now();
    let mut n = 0.0;
    while started.elapsed() < Duration::from_millis(2000) {
        n += 1.0;
        let mut frame = status("Printing", json!({"printing": true}), Some(60.0));
        frame["status"]["progress"]["completion"] = json!(n);
        frame["status"]["_ts"] = json!(1_800_000_000.0 + n);
        ws_send(&mut agent, frame).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = n;
    async fn drain(ws: &mut Ws, within: Duration) -> Vec<f64> {
        let mut got = Vec::new();
        let end = Instant::now() + within;
        while let Ok(m) = tokio::time::timeout_at(end.into(), ws_next_json(ws)).await {
            let c = &m["payload"]["data"]["printerChanged"];
            if let Some(x) = c["printer"]["status"]["progress"]["completion"].as_f64() {
                got.push(x);
            }
        }
        got
    }
    // Everything sent has arrived once the interval after the last ends.
    let every_got = drain(&mut every, Duration::from_millis(1500)).await;
    let slow_got = drain(&mut slow, Duration::from_millis(1000)).await;
    assert!(
        every_got.len() > 20,
        "without coalescing: {} updates",
        every_got.len()
    );
    assert!(
        (2..=7).contains(&slow_got.len()),
        "coalesced to 500 ms over ~2 s: {} updates ({slow_got:?})",
        slow_got.len()
    );
    assert_eq!(slow_got.last(), Some(&last), "the newest status arrives");
    let seen: HashSet<u64> = slow_got.iter().map(|x| *x as u64).collect();
    assert_eq!(seen.len(), slow_got.len(), "no update sent twice");
    assert!(
        slow_got.windows(2).all(|w| w[0] < w[1]),
        "in order: {slow_got:?}"
    );
}
