//! The resolved printers kept for lists (`graphql/rendered.rs`): reused
//! while their rows are unchanged, never stale after any writer's change
//! (the API, an agent, another instance: a row written straight to the
//! database here), never shared between users or selections, and bounded.
//! The GraphQL query cache is off in these apps, so every list is computed.

use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, metric};

const HITS: &str = "printgate_printer_render_requests_total{outcome=\"hit\"}";

async fn app(printer_cache_bytes: usize) -> TestApp {
    TestApp::spawn_with(None, |c| {
        c.guards.graphql_cache_bytes = 0;
        c.schema.printer_cache_bytes = printer_cache_bytes;
    })
    .await
}

async fn list(app: &TestApp, token: &str, query: &str, variables: Value) -> Vec<Value> {
    let body = app.gql(Some(token), query, variables).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["printers"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_listed_printer_is_reused_until_its_row_changes_by_any_writer() {
    let app = app(1 << 20).await;
    let t = app.token("rendered-rows");
    let mut ids = Vec::new();
    for n in ["a", "b", "c"] {
        ids.push(app.create_printer(&t, n).await);
    }
    let q = "{ printers { id name state status { raw } } }";
    let first = list(&app, &t, q, json!({})).await;
    let hits = metric(&app.metrics().await, HITS);
    let again = list(&app, &t, q, json!({})).await;
    assert_eq!(again, first);
    assert!(
        metric(&app.metrics().await, HITS) >= hits + 3.0,
        "the unchanged printers were reused"
    );

    // A write the event bus never heard of: straight to the row.
    let mut row: entity::printer::ActiveModel = app.stored_printer(&ids[1]).await.into();
    row.name = Set("renamed in the database".into());
    row.status = Set(Some(json!({"_ts": 1.0, "state": {"text": "Printing"}})));
    row.status_at = Set(Some(chrono::Utc::now()));
    row.agent_instance = Set(Some("another instance".into()));
    row.update(&app.db).await.unwrap();
    let after = list(&app, &t, q, json!({})).await;
    assert_eq!(after[0], first[0]);
    assert_eq!(after[2], first[2]);
    assert_eq!(after[1]["name"], "renamed in the database");
    assert_eq!(after[1]["status"]["raw"]["state"]["text"], "Printing");

    // Time is part of the row's meaning: a status heard 200 s ago is offline.
    let mut row: entity::printer::ActiveModel = app.stored_printer(&ids[1]).await.into();
    row.status_at = Set(Some(chrono::Utc::now() - chrono::Duration::seconds(200)));
    row.update(&app.db).await.unwrap();
    let old = list(&app, &t, q, json!({})).await;
    assert_eq!(old[1]["state"], "OFFLINE");
    assert!(old[1]["status"].is_null(), "{}", old[1]);

    // And through the API.
    let renamed = app
        .gql(
            Some(&t),
            "mutation($id: ID!) { updatePrinter(id: $id, input: {name: \"by the API\"}) { id } }",
            json!({"id": ids[2]}),
        )
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    assert_eq!(list(&app, &t, q, json!({})).await[2]["name"], "by the API");
}

#[tokio::test]
async fn a_change_to_the_current_print_alone_is_seen() {
    let app = app(1 << 20).await;
    let t = app.token("rendered-print");
    let id = app.create_printer(&t, "p").await;
    let print = app.start_print(&id, true).await;
    let q = "{ printers { id currentPrint { id alertMutedAt } notWatchingReason } }";
    let before = list(&app, &t, q, json!({})).await;
    assert!(
        before[0]["currentPrint"]["alertMutedAt"].is_null(),
        "{before:?}"
    );
    assert_eq!(list(&app, &t, q, json!({})).await, before);

    // The print's row changes; the printer's does not.
    let mut row: entity::print::ActiveModel = app.stored_print(print).await.into();
    row.alert_muted_at = Set(Some(chrono::Utc::now()));
    row.update(&app.db).await.unwrap();
    let after = list(&app, &t, q, json!({})).await;
    assert!(
        after[0]["currentPrint"]["alertMutedAt"].is_string(),
        "{after:?}"
    );
}

#[tokio::test]
async fn variables_directives_and_arguments_are_part_of_the_selection() {
    let app = app(1 << 20).await;
    let t = app.token("rendered-vars");
    app.create_printer(&t, "p").await;
    let q = "query($x: Boolean!) { printers { id name @skip(if: $x) settings @include(if: $x) { id } } }";
    for _ in 0..2 {
        let shown = list(&app, &t, q, json!({"x": false})).await;
        assert_eq!(shown[0]["name"], "p");
        assert!(shown[0].get("settings").is_none(), "{shown:?}");
        let skipped = list(&app, &t, q, json!({"x": true})).await;
        assert!(skipped[0].get("name").is_none(), "{skipped:?}");
        assert!(skipped[0]["settings"]["id"].is_string(), "{skipped:?}");
    }
    // Aliases and the fragments a selection spreads.
    let a = list(&app, &t, "{ printers { n: name } }", json!({})).await;
    let b = list(&app, &t, "{ printers { m: name } }", json!({})).await;
    assert_eq!(a[0], json!({"n": "p"}));
    assert_eq!(b[0], json!({"m": "p"}));
    let f1 = "{ printers { ...F } } fragment F on Printer { name }";
    let f2 = "{ printers { ...F } } fragment F on Printer { id }";
    assert_eq!(list(&app, &t, f1, json!({})).await[0], json!({"name": "p"}));
    assert!(list(&app, &t, f2, json!({})).await[0]["id"].is_string());
}

#[tokio::test]
async fn users_never_see_each_others_printers_through_it() {
    let app = app(1 << 20).await;
    let (ta, tb) = (app.token("rendered-a"), app.token("rendered-b"));
    app.create_printer(&ta, "mine").await;
    app.create_printer(&tb, "theirs").await;
    let q = "{ printers { id name } }";
    for _ in 0..2 {
        let a = list(&app, &ta, q, json!({})).await;
        let b = list(&app, &tb, q, json!({})).await;
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 1);
        assert_eq!(a[0]["name"], "mine");
        assert_eq!(b[0]["name"], "theirs");
    }
}

#[tokio::test]
async fn what_it_keeps_stays_within_its_budget() {
    let budget = 40_000;
    let app = app(budget).await;
    let t = app.token("rendered-bound");
    let mut names = Vec::new();
    for i in 0..30 {
        names.push(format!("printer {i}"));
        app.create_printer(&t, &names[i]).await;
    }
    // Many selections of 30 printers: far more than the budget holds.
    for k in 0..20 {
        let q = format!("{{ printers {{ a{k}: name id settings {{ raw }} }} }}");
        let got = list(&app, &t, &q, json!({})).await;
        let listed: Vec<&str> = got
            .iter()
            .map(|p| p[format!("a{k}").as_str()].as_str().unwrap())
            .collect();
        assert_eq!(listed, names);
        let text = app.metrics().await;
        let held = metric(&text, "printgate_cache_bytes{cache=\"printers\"}");
        assert!(held <= budget as f64, "held {held} of {budget}");
        assert!(
            metric(&text, "printgate_cache_entries{cache=\"printers\"}") > 0.0,
            "something is kept"
        );
    }
}

#[tokio::test]
async fn a_credential_shown_once_is_hidden_in_every_list() {
    let app = app(1 << 20).await;
    let t = app.token("rendered-credential");
    app.create_printer(&t, "p").await;
    let q = "{ printers { id authToken } }";
    assert!(list(&app, &t, q, json!({})).await[0]["authToken"].is_null());
    let created = app
        .gql(
            Some(&t),
            "mutation { createPrinter(input: {name: \"q\"}) { id authToken } }",
            json!({}),
        )
        .await;
    assert!(
        created["data"]["createPrinter"]["authToken"].is_string(),
        "{created}"
    );
    for p in list(&app, &t, q, json!({})).await {
        assert!(p["authToken"].is_null(), "{p}");
    }
}

#[tokio::test]
async fn a_value_kept_for_rest_never_shows_its_credential_to_graphql() {
    let app = app(1 << 20).await;
    let t = app.token("rendered-rest");
    app.create_printer(&t, "p").await;
    // REST shows the agent's token in its answers.
    let rest: Vec<Value> = app
        .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&t))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rest[0]["auth_token"].is_string(), "{rest:?}");
    // The same document sent to /graphql: the same selection, not shown.
    let document = printgate::rest::routes::ROUTES
        .iter()
        .find(|r| r.document.contains("query ListPrinters"))
        .unwrap()
        .document;
    for _ in 0..2 {
        let body = app
            .gql(Some(&t), document, json!({"withArchived": false}))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let listed = &body["data"]["result"][0];
        assert_eq!(listed["name"], "p");
        assert!(listed["id"].is_string(), "{listed}");
        assert!(listed.get("auth_token").unwrap().is_null(), "{listed}");
    }
}

/// What the kept printers trust: the database moves a printer's and a
/// print's revision forward on every update, however it is written (a
/// column set through the entity layer, plain SQL, a stale model written
/// back whole, which would otherwise carry the old revision back).
#[tokio::test]
async fn every_update_moves_a_rows_revision_forward_whoever_writes_it() {
    use sea_orm::{ConnectionTrait, IntoActiveModel};
    let app = app(1 << 20).await;
    let t = app.token("rendered-revisions");
    let id = app.create_printer(&t, "p").await;
    let print = app.start_print(&id, true).await;
    let n: i32 = id.parse().unwrap();

    let start = app.stored_printer(&id).await;
    let mut row: entity::printer::ActiveModel = start.clone().into();
    row.name = Set("by the entity layer".into());
    row.update(&app.db).await.unwrap();
    let after_entity = app.stored_printer(&id).await.revision;
    assert!(
        after_entity > start.revision,
        "{after_entity} after {}",
        start.revision
    );

    app.db
        .execute_unprepared(&format!(
            "UPDATE printers SET name = 'by SQL' WHERE id = {n}"
        ))
        .await
        .unwrap();
    let after_sql = app.stored_printer(&id).await.revision;
    assert!(after_sql > after_entity, "{after_sql} after {after_entity}");

    // The model read at the start, written back whole: its revision is old.
    let stale = start.into_active_model().reset_all();
    stale.update(&app.db).await.unwrap();
    let after_stale = app.stored_printer(&id).await;
    assert!(
        after_stale.revision > after_sql,
        "{} after {after_sql}",
        after_stale.revision
    );

    // An update that changes nothing is still an update.
    app.db
        .execute_unprepared(&format!("UPDATE printers SET name = name WHERE id = {n}"))
        .await
        .unwrap();
    assert!(app.stored_printer(&id).await.revision > after_stale.revision);

    let before = app.stored_print(print).await.revision;
    app.db
        .execute_unprepared(&format!(
            "UPDATE prints SET filename = 'renamed.gcode' WHERE id = {print}"
        ))
        .await
        .unwrap();
    assert!(app.stored_print(print).await.revision > before);
}

/// Kept printers are written into answers as the bytes they were encoded
/// to (`rendered::Splice`): over GraphQL as JSON, in REST's lists in the
/// REST shape. An answer built from kept printers is the answer built
/// from rows, byte for byte, over both edges.
#[tokio::test]
async fn answers_built_from_kept_printers_are_those_built_from_rows() {
    let app = app(1 << 20).await;
    let t = app.token("rendered-spliced");
    let mut ids = Vec::new();
    for n in ["a", "b", "c"] {
        ids.push(app.create_printer(&t, n).await);
    }
    let rest = || async {
        app.rest(reqwest::Method::GET, "/api/v1/printers/", Some(&t))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let q = "{ printers { id name state settings { raw } } }";
    let first_rest = rest().await;
    let first_gql = list(&app, &t, q, json!({})).await;
    let hits = metric(&app.metrics().await, HITS);
    // A rename moves the user's counts (the REST answer is computed
    // again) and one printer's revision: the other two are kept.
    let renamed = app
        .gql(
            Some(&t),
            "mutation($id: ID!) { updatePrinter(id: $id, input: {name: \"b2\"}) { id } }",
            json!({"id": ids[1]}),
        )
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    let again_rest = rest().await;
    let again_gql = list(&app, &t, q, json!({})).await;
    assert!(
        metric(&app.metrics().await, HITS) >= hits + 4.0,
        "two kept printers in each of two lists"
    );
    assert_eq!(
        again_rest,
        first_rest.replace("\"name\":\"b\"", "\"name\":\"b2\""),
        "the REST body, byte for byte, but for the rename"
    );
    let parsed: Vec<Value> = serde_json::from_str(&again_rest).unwrap();
    assert_eq!(parsed[0]["id"], json!(ids[0].parse::<i64>().unwrap()));
    assert_eq!(again_gql[0], first_gql[0]);
    assert_eq!(again_gql[2], first_gql[2]);
    assert_eq!(again_gql[1]["name"], "b2");
}
