//! Print history: the `prints` connection walks every print exactly once
//! forward and backward with prints added in between, filters and
//! `totalCount` agree with the rows, states follow the lifecycle, and no
//! user sees another's prints.

use std::collections::HashSet;

use chrono::{Duration as Span, Utc};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

/// Inserts a print as an agent's lifecycle would leave it.
async fn print(app: &TestApp, printer: &str, n: i64, file: &str, end: &str) -> i32 {
    let started = Utc::now() - Span::hours(100 - n);
    let ended = started + Span::minutes(30);
    let mut row = entity::print::ActiveModel {
        printer_id: Set(printer.parse().unwrap()),
        ext_id: Set(1_700_000_000 + n),
        filename: Set(file.into()),
        started_at: Set(started),
        ..Default::default()
    };
    match end {
        "finished" => row.finished_at = Set(Some(ended)),
        "cancelled" => row.cancelled_at = Set(Some(ended)),
        "failed" => {
            row.cancelled_at = Set(Some(ended));
            row.failed_at = Set(Some(ended));
        }
        "alerted-cancel" => {
            row.cancelled_at = Set(Some(ended));
            row.alerted_at = Set(Some(started));
        }
        "false-alarm-cancel" => {
            row.cancelled_at = Set(Some(ended));
            row.alerted_at = Set(Some(started));
            row.alert_overwrite = Set(Some("NOT_FAILED".into()));
        }
        _ => {}
    }
    row.insert(&app.db).await.unwrap().id
}

const PAGE: &str = "query($p: ID, $f: PrintFilter, $o: PrintOrder, $first: Int, $after: String, $last: Int, $before: String) {
  prints(printerId: $p, filter: $f, orderBy: $o, first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id filename state duration startedAt printer { name } } }
  }
}";

fn ids(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paging_walks_every_print_once_forward_and_backward_with_inserts_between() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let printer = app.create_printer(&alice, "MK4").await;
    let mut all = Vec::new();
    for n in 0..23 {
        all.push(print(&app, &printer, n, &format!("part-{n}.gcode"), "finished").await);
    }
    // Forward, newest first, 5 a page; a print is added before each page.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut extra = 0;
    loop {
        extra += 1;
        print(&app, &printer, 200 + extra, "late.gcode", "").await;
        let body = app
            .gql(
                Some(&alice),
                PAGE,
                json!({"p": printer, "first": 5, "after": after}),
            )
            .await;
        let page = &body["data"]["prints"];
        seen.extend(ids(page));
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let originals: Vec<String> = all.iter().rev().map(|i| i.to_string()).collect();
    let walked: Vec<String> = seen
        .iter()
        .filter(|i| originals.contains(i))
        .cloned()
        .collect();
    assert_eq!(walked, originals, "each original print once, newest first");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no print twice");

    // Backward from the end: the same prints, oldest pages first.
    let mut back = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let body = app
            .gql(
                Some(&alice),
                PAGE,
                json!({"p": printer, "last": 4, "before": before}),
            )
            .await;
        let page = &body["data"]["prints"];
        let mut chunk = ids(page);
        chunk.extend(back);
        back = chunk;
        if !page["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = page["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
    let total = app
        .gql(Some(&alice), PAGE, json!({"p": printer, "first": 1}))
        .await["data"]["prints"]["totalCount"]
        .as_u64()
        .unwrap();
    assert_eq!(back.len() as u64, total);
    let unique: HashSet<&String> = back.iter().collect();
    assert_eq!(unique.len(), back.len());
    // The first page has no previous page; the last no next one.
    let first = app
        .gql(Some(&alice), PAGE, json!({"p": printer, "first": 3}))
        .await;
    assert_eq!(
        first["data"]["prints"]["pageInfo"]["hasPreviousPage"],
        false
    );
    let oldest = app
        .gql(
            Some(&alice),
            PAGE,
            json!({"p": printer, "first": 3, "o": {"direction": "ASC"}}),
        )
        .await;
    assert_eq!(
        ids(&oldest["data"]["prints"])[0],
        all[0].to_string(),
        "ASC starts with the oldest"
    );
}

#[tokio::test]
async fn filters_states_and_totals_agree_with_the_rows_and_stay_the_viewers() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let a = app.create_printer(&alice, "A").await;
    let b = app.create_printer(&alice, "B").await;
    let bob = app.token("bob");
    let bobs = app.create_printer(&bob, "Bob's").await;
    let kinds = [
        "finished",
        "cancelled",
        "failed",
        "alerted-cancel",
        "false-alarm-cancel",
        "",
    ];
    for (n, kind) in kinds.iter().enumerate() {
        print(&app, &a, n as i64, &format!("Benchy_{n}.gcode"), kind).await;
        print(&app, &b, 10 + n as i64, &format!("cube_{n}.gcode"), kind).await;
        print(&app, &bobs, 20 + n as i64, "Benchy.gcode", kind).await;
    }
    let q = |vars: Value| app.gql(Some(&alice), PAGE, vars);
    let all = q(json!({"first": 100})).await;
    let all = &all["data"]["prints"];
    assert_eq!(all["totalCount"], 12, "Alice's prints only: {all}");
    let states: Vec<(&str, &str)> = all["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["filename"].as_str().unwrap(),
                e["node"]["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(states.contains(&("Benchy_0.gcode", "FINISHED")));
    assert!(states.contains(&("Benchy_1.gcode", "CANCELLED")));
    assert!(states.contains(&("Benchy_2.gcode", "FAILED")));
    assert!(
        states.contains(&("Benchy_3.gcode", "FAILED")),
        "cancelled under an alert"
    );
    assert!(
        states.contains(&("Benchy_4.gcode", "CANCELLED")),
        "a false alarm"
    );
    assert!(states.contains(&("Benchy_5.gcode", "PRINTING")));
    assert_eq!(all["edges"][0]["node"]["printer"]["name"], "B");
    for state in ["FINISHED", "CANCELLED", "FAILED", "PRINTING"] {
        let got = q(json!({"first": 100, "f": {"states": [state]}})).await;
        let got = &got["data"]["prints"];
        let expected = states.iter().filter(|(_, s)| *s == state).count();
        assert_eq!(got["totalCount"], expected, "{state}");
        assert_eq!(ids(got).len(), expected, "{state}");
        assert!(
            got["edges"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["node"]["state"] == state)
        );
    }
    let two = q(json!({"first": 100, "f": {"states": ["FAILED", "CANCELLED"]}})).await;
    assert_eq!(two["data"]["prints"]["totalCount"], 8);
    // Case-insensitive file names, wildcards taken literally.
    let benchy = q(json!({"first": 100, "f": {"filename": "bEnChY"}})).await;
    assert_eq!(benchy["data"]["prints"]["totalCount"], 6);
    let literal = q(json!({"first": 100, "f": {"filename": "%"}})).await;
    assert_eq!(literal["data"]["prints"]["totalCount"], 0);
    // A time window on the start.
    let since = (Utc::now() - Span::hours(95)).to_rfc3339();
    let until = (Utc::now() - Span::hours(88)).to_rfc3339();
    let window = q(json!({"first": 100, "f": {"since": since, "until": until}})).await;
    let w = &window["data"]["prints"];
    // A's prints 5 (95 h ago) and B's 10, 11 (90 h, 89 h ago).
    assert_eq!(w["totalCount"], 3, "{w}");
    // One printer's history, and a page smaller than the total.
    let one = q(json!({"p": a, "first": 2})).await;
    assert_eq!(one["data"]["prints"]["totalCount"], 6);
    assert_eq!(ids(&one["data"]["prints"]).len(), 2);
    assert_eq!(one["data"]["prints"]["pageInfo"]["hasNextPage"], true);
    // The same through the printer.
    let nested = app
        .gql(
            Some(&alice),
            "query($id: ID!) { printer(id: $id) { prints(first: 10, filter: {states: [FINISHED]}) { totalCount nodes { filename duration } } } }",
            json!({"id": a}),
        )
        .await;
    let nested = &nested["data"]["printer"]["prints"];
    assert_eq!(nested["totalCount"], 1);
    assert_eq!(nested["nodes"][0]["duration"], 1800);
    // Bob's printer is not Alice's to read; bad arguments are refused.
    let foreign = q(json!({"p": bobs, "first": 5})).await;
    assert_eq!(error_code(&foreign), "NOT_FOUND");
    for bad in [
        json!({"first": 0}),
        json!({"first": 101}),
        json!({"first": 5, "last": 5}),
        json!({"first": 5, "after": "not-a-cursor"}),
    ] {
        let body = q(bad.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
}
