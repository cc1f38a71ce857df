//! The REST paths: every documented route and refusal, with the body
//! checked, the database checked after refusals, and golden files pinning
//! the Printer body's shape.

use std::path::Path;

use chrono::Utc;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const P: &str = "/api/v1/printers";

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, value)
}

async fn create(app: &TestApp, token: &str, name: &str) -> Value {
    let resp = app
        .rest(Method::POST, &format!("{P}/"), Some(token))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    let (status, b) = body(resp).await;
    assert_eq!(status, 201, "{b}");
    b
}

fn is_timestamp(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let ok = chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z');
    let frac = s.split('.').nth(1).map(|f| f.trim_end_matches('Z').len());
    ok && matches!(frac, None | Some(6))
}

/// Sorts object keys, recursively. The agent's own objects (`status`,
/// `settings`) keep their values verbatim on every backend, but PostgreSQL's
/// JSON storage does not keep their key order, so the golden files pin the
/// Printer's keys in order and the agent's objects by content.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&o[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Replaces the values that differ from run to run, then compares with the
/// golden file (rewriting it and failing when it is stale).
fn assert_golden(name: &str, mut printer: Value) {
    printer["status"] = sorted(&printer["status"]);
    if let Some(s) = printer["settings"].get_mut("temp_profiles") {
        *s = sorted(s);
    }
    assert!(
        is_timestamp(&printer["created_at"]),
        "{}",
        printer["created_at"]
    );
    printer["created_at"] = json!("<created_at>");
    printer["auth_token"] = json!("<auth_token>");
    if printer["archived_at"].is_string() {
        assert!(is_timestamp(&printer["archived_at"]));
        printer["archived_at"] = json!("<archived_at>");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/golden")
        .join(format!("{name}.json"));
    let actual = serde_json::to_string_pretty(&printer).unwrap() + "\n";
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != actual {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        panic!(
            "{} was stale and has been rewritten; review and commit it",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_printer_body_matches_the_golden_files() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let created = create(&app, &token, "Prusa").await;
    let id = created["id"].to_string();
    assert_golden("printer_new", created);

    app.start_print(&id, true).await;
    let (_, with_print) = body(
        app.rest(Method::GET, &format!("{P}/{id}/"), Some(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_golden("printer_with_current_print", with_print);

    let mut row: entity::printer::ActiveModel = app.stored_printer(&id).await.into();
    row.status = Set(Some(json!({
        "_ts": 1_764_220_000,
        "state": {"text": "Printing", "flags": {"operational": true, "printing": true, "paused": false}},
        "progress": {"completion": 42.5, "printTime": 600, "printTimeLeft": 900},
        "job": {"file": {"name": "benchy.gcode", "size": 123_456}},
        "temperatures": {"tool0": {"actual": 214.8, "target": 215.0}, "bed": {"actual": 60.0, "target": 60.0}}
    })));
    row.status_at = Set(Some(Utc::now()));
    // Held by this app, as a connected agent's printer is (an instance
    // that is not alive would have it shown offline by the presence sweep).
    row.agent_instance = Set(Some(app.instance.clone()));
    row.agent_settings = Set(Some(json!({
        "webcams": [{"name": "cam", "is_primary_camera": true, "flipH": true, "rotation": 90, "streamRatio": "4:3"}],
        "temperature": {"profiles": [{"name": "PLA", "extruder": 215, "bed": 60}]},
        "agent": {"name": "octoprint_obico", "version": "2.6.1"}
    })));
    row.agent_name = Set(Some("octoprint_obico".into()));
    row.agent_version = Set(Some("2.6.1".into()));
    row.update(&app.db).await.unwrap();
    // Written behind the service's back (no event, no count moved), as no
    // client can: the answer read above is served for up to the read
    // cache's age, the bound on what it can miss.
    tokio::time::sleep(printgate::readcache::MAX_AGE + std::time::Duration::from_millis(50)).await;
    let (_, live) = body(
        app.rest(Method::GET, &format!("{P}/{id}"), Some(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        live["not_watching_reason"],
        Value::Null,
        "printing and watched: {live}"
    );
    assert_golden("printer_with_agent_status_and_settings", live);

    app.gql(
        Some(&token),
        "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let (_, archived) = body(
        app.rest(Method::GET, &format!("{P}/{id}/"), Some(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_golden("printer_archived", archived);
}

#[tokio::test]
async fn list_hides_archived_and_deleted_printers_unless_asked() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let a = create(&app, &token, "A").await["id"].clone();
    let b = create(&app, &token, "B").await["id"].clone();
    let c = create(&app, &token, "C").await["id"].clone();
    app.gql(
        Some(&token),
        "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
        json!({"id": b.to_string()}),
    )
    .await;
    app.gql(
        Some(&token),
        "mutation($id: ID!) { deletePrinter(id: $id) }",
        json!({"id": c.to_string()}),
    )
    .await;
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].clone())
            .collect::<Vec<_>>()
    };
    for path in [
        format!("{P}/"),
        P.to_owned(),
        format!("{P}/?with_archived=false"),
        format!("{P}?with_archived=No"),
    ] {
        let (status, list) = body(
            app.rest(Method::GET, &path, Some(&token))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(ids(&list), vec![a.clone()], "{path}");
    }
    for yes in ["true", "1", "yes", "ON"] {
        let (_, list) = body(
            app.rest(
                Method::GET,
                &format!("{P}/?with_archived={yes}"),
                Some(&token),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(ids(&list), vec![a.clone(), b.clone()], "{yes}");
    }
    let (status, err) = body(
        app.rest(
            Method::GET,
            &format!("{P}/?with_archived=maybe"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err),
        (400, json!({"with_archived": ["Must be a valid boolean."]}))
    );
    let (_, others) = body(
        app.rest(Method::GET, &format!("{P}/"), Some(&app.token("bob")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(others, json!([]));
}

#[tokio::test]
async fn create_answers_201_with_the_printer_and_refusals_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let resp = app
        .rest(Method::POST, P, Some(&token))
        .json(&json!({"name": " Voron ", "retract_on_pause": 3.5, "id": 99, "status": {"x": 1}}))
        .send()
        .await
        .unwrap();
    let (status, created) = body(resp).await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], "Voron");
    assert_eq!(created["retract_on_pause"], 3.5);
    assert_ne!(created["id"], 99, "read-only id ignored");
    let (_, fetched) = body(
        app.rest(
            Method::GET,
            &format!("{P}/{}/", created["id"]),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(fetched, created);

    let refusals = [
        (json!({}), json!({"name": ["This field is required."]})),
        (
            json!({"name": ""}),
            json!({"name": ["This field may not be blank."]}),
        ),
        (
            json!({"name": "x", "lift_z_on_pause": -1}),
            json!({"lift_z_on_pause": ["Ensure this value is between 0.0 and 100.0."]}),
        ),
        (
            json!({"name": "x", "colour": "red"}),
            json!({"colour": ["Unknown field."]}),
        ),
        (
            json!({"name": "x", "action_on_failure": "EXPLODE"}),
            json!({"action_on_failure": ["\"EXPLODE\" is not a valid choice."]}),
        ),
    ];
    for (input, expected) in refusals {
        let (status, err) = body(
            app.rest(Method::POST, &format!("{P}/"), Some(&token))
                .json(&input)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, &err), (400, &expected), "{input}");
    }
    assert_eq!(app.printer_rows().await, 1);
}

#[tokio::test]
async fn patch_writes_the_given_fields_and_ignores_read_only_ones() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let created = create(&app, &token, "Prusa").await;
    let id = created["id"].clone();
    let mut sent = created.clone();
    sent["lift_z_on_pause"] = json!(7.5);
    sent["auth_token"] = json!("stolen");
    sent["created_at"] = json!("2001-01-01T00:00:00Z");
    let (status, updated) = body(
        app.rest(Method::PATCH, &format!("{P}/{id}/"), Some(&token))
            .json(&sent)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["lift_z_on_pause"], 7.5);
    assert_eq!(updated["auth_token"], created["auth_token"]);
    assert_eq!(updated["created_at"], created["created_at"]);

    let (status, same) = body(
        app.rest(Method::PATCH, &format!("{P}/{id}"), Some(&token))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &same),
        (200, &updated),
        "an empty object is a no-op"
    );
}

#[tokio::test]
async fn a_refused_patch_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = create(&app, &token, "Prusa").await["id"].to_string();
    let before = app.stored_printer(&id).await;
    let path = format!("{P}/{id}/");
    let cases = [
        (
            json!({"name": "new", "mystery": 1}),
            json!({"mystery": ["Unknown field."]}),
        ),
        (
            json!({"name": "new", "retract_on_pause": "far"}),
            json!({"retract_on_pause": ["A valid number is required."]}),
        ),
        (
            json!({"name": "new", "watching_enabled": "sure"}),
            json!({"watching_enabled": ["Must be a valid boolean."]}),
        ),
        (
            json!({"name": "new", "detective_sensitivity": 2}),
            json!({"detective_sensitivity": ["Ensure this value is between 0.8 and 1.2."]}),
        ),
        (
            json!({"name": "new", "min_timelapse_secs_on_finish": -5}),
            json!({"min_timelapse_secs_on_finish": ["Ensure this value is -1 (no timelapse) or greater than or equal to 0."]}),
        ),
        (
            json!({"lift_z_on_pause": 1, "name": null}),
            json!({"name": ["This field may not be null."]}),
        ),
        (
            json!({"name": "x".repeat(257)}),
            json!({"name": ["Ensure this field has no more than 256 characters."]}),
        ),
    ];
    for (input, expected) in cases {
        let (status, err) = body(
            app.rest(Method::PATCH, &path, Some(&token))
                .json(&input)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, &err), (400, &expected), "{input}");
    }
    let raw = |b: &'static str, ct: &'static str| {
        app.rest(Method::PATCH, &path, Some(&token))
            .header(CONTENT_TYPE, ct)
            .body(b)
    };
    let (status, err) = body(raw("{\"name\": ", "application/json").send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error"),
        "{err}"
    );
    let (status, err) = body(raw("[1, 2]", "application/json").send().await.unwrap()).await;
    assert_eq!(
        (status, err),
        (
            400,
            json!({"detail": "Invalid data. Expected a JSON object."})
        )
    );
    let (status, err) = body(
        raw("name=new", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err),
        (
            415,
            json!({"detail": "Unsupported media type \"application/x-www-form-urlencoded\" in request."})
        )
    );
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, err) = body(
        app.rest(Method::PATCH, &path, Some(&token))
            .header(CONTENT_TYPE, "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413, "{err}");
    assert!(err["detail"].is_string());
    assert_eq!(app.stored_printer(&id).await, before);
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_both_survive() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = create(&app, &token, "Prusa").await["id"].to_string();
    let path = format!("{P}/{id}/");
    for round in 0..10 {
        let a = app
            .rest(Method::PATCH, &path, Some(&token))
            .json(&json!({"name": format!("n{round}")}))
            .send();
        let b = app
            .rest(Method::PATCH, &path, Some(&token))
            .json(&json!({"min_timelapse_secs_on_finish": round}))
            .send();
        let (a, b) = tokio::join!(a, b);
        assert_eq!(
            (a.unwrap().status().as_u16(), b.unwrap().status().as_u16()),
            (200, 200)
        );
        let stored = app.stored_printer(&id).await;
        assert_eq!(stored.name, format!("n{round}"));
        assert_eq!(stored.min_timelapse_secs_on_finish, round);
    }
}

#[tokio::test]
async fn missing_deleted_foreign_and_non_numeric_ids_are_404() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let mine = create(&app, &alice, "A").await["id"].to_string();
    let gone = create(&app, &alice, "B").await["id"].to_string();
    let (status, b) = body(
        app.rest(Method::DELETE, &format!("{P}/{gone}/"), Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, b),
        (200, Value::Null),
        "DELETE answers 200 with an empty body"
    );
    assert!(app.stored_printer(&gone).await.deleted_at.is_some());
    let before = app.stored_printer(&mine).await;
    for (token, id) in [
        (&alice, gone.as_str()),
        (&alice, "999"),
        (&alice, "abc"),
        (&alice, "1.5"),
        (&alice, "99999999999999999999"),
        (&bob, mine.as_str()),
    ] {
        for (method, suffix) in [
            (Method::GET, "/"),
            (Method::PATCH, ""),
            (Method::DELETE, "/"),
            (Method::POST, "/pause_print"),
            (Method::POST, "/acknowledge_alert/"),
        ] {
            let req = app.rest(method.clone(), &format!("{P}/{id}{suffix}"), Some(token));
            let req = if method == Method::PATCH {
                req.json(&json!({"name": "hijack"}))
            } else {
                req
            };
            let (status, b) = body(req.send().await.unwrap()).await;
            assert_eq!(
                (status, &b),
                (404, &json!({"detail": "Not found."})),
                "{method} {id}{suffix}"
            );
        }
    }
    assert_eq!(
        app.stored_printer(&mine).await,
        before,
        "nothing of Alice's changed"
    );
}

#[tokio::test]
async fn unauthenticated_requests_get_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = create(&app, &token, "A").await["id"].to_string();
    for auth in [None, Some("Bearer nonsense"), Some("Token abc")] {
        let mut req = app
            .rest(Method::PATCH, &format!("{P}/{id}/"), None)
            .json(&json!({"name": "x"}));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let (status, b) = body(resp).await;
        assert_eq!(status, 401);
        assert!(b["detail"].is_string(), "{b}");
    }
    let (status, _) = body(app.rest(Method::GET, P, None).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(app.stored_printer(&id).await.name, "A");
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let cases = [
        (Method::PUT, format!("{P}/1/"), "GET, PATCH, DELETE"),
        (Method::GET, format!("{P}/1/pause_print"), "POST"),
        (Method::DELETE, format!("{P}/"), "GET, POST"),
        (Method::PATCH, format!("{P}/1/cancel_print/"), "POST"),
    ];
    for (method, path, allow) in cases {
        let resp = app
            .rest(method.clone(), &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let (status, b) = body(resp).await;
        assert_eq!(status, 405);
        assert_eq!(
            b,
            json!({"detail": format!("Method \"{method}\" not allowed.")})
        );
    }
}

#[tokio::test]
async fn actions_answer_with_succeeded_and_the_printer() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = create(&app, &token, "Prusa").await["id"].to_string();
    for action in [
        "cancel_print",
        "pause_print",
        "resume_print",
        "mute_current_print",
        "acknowledge_alert",
    ] {
        let (status, b) = body(
            app.rest(Method::POST, &format!("{P}/{id}/{action}"), Some(&token))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{action}");
        assert_eq!(b["succeeded"], false, "no current print: {action}");
        assert_eq!(b["printer"]["id"].to_string(), id);
    }
    let print = app.start_print(&id, true).await;
    let (_, b) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/pause_print/"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(b["succeeded"], false, "no agent connected");
    let (_, b) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/mute_current_print"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(b["succeeded"], true);
    assert!(
        b["printer"]["current_print"]["alert_muted_at"].is_string(),
        "{b}"
    );
    assert_eq!(
        b["printer"]["not_watching_reason"],
        "Printer is not actively printing"
    );
    let (_, b) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/mute_current_print?mute_alert=false"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(b["printer"]["current_print"]["alert_muted_at"], Value::Null);
    assert!(app.stored_print(print).await.alert_muted_at.is_none());

    let before = app.stored_print(print).await;
    let (status, err) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/acknowledge_alert?alert_overwrite=maybe"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err),
        (
            400,
            json!({"alert_overwrite": ["\"maybe\" is not a valid choice."]})
        )
    );
    assert_eq!(
        app.stored_print(print).await,
        before,
        "a refused acknowledge writes nothing"
    );
    let (status, err) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/mute_current_print?mute_alert=perhaps"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err),
        (400, json!({"mute_alert": ["Must be a valid boolean."]}))
    );

    let (_, b) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/acknowledge_alert?alert_overwrite=NOT_FAILED"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(b["succeeded"], true);
    assert_eq!(
        b["printer"]["current_print"]["alert_overwrite"],
        "NOT_FAILED"
    );
    assert!(b["printer"]["current_print"]["alert_acknowledged_at"].is_string());
    let (_, b) = body(
        app.rest(
            Method::POST,
            &format!("{P}/{id}/cancel_print"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(b["succeeded"], false);
    assert_eq!(
        b["printer"]["current_print"]["alert_overwrite"], "NOT_FAILED",
        "an undelivered cancel records no verdict"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_committed() {
    let app = TestApp::spawn().await;
    let (status, served) = body(
        app.rest(Method::GET, "/api/v1/openapi.json", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(served["openapi"], "3.1.0");
    let ops: Vec<&str> = served["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| {
            p.as_object()
                .unwrap()
                .values()
                .map(|o| o["operationId"].as_str().unwrap())
        })
        .collect();
    assert_eq!(ops.len(), printgate::rest::routes::ROUTES.len(), "{ops:?}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let actual = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != actual {
        std::fs::write(&path, &actual).unwrap();
        panic!("docs/openapi.json was stale and has been rewritten; review and commit it");
    }
}

#[tokio::test]
async fn repeated_reads_never_show_stale_or_foreign_data() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let id = create(&app, &alice, "Before").await["id"].to_string();
    create(&app, &bob, "Bob's").await;
    let names = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // Warm the cache: the same read several times.
    for _ in 0..3 {
        let (_, list) = body(
            app.rest(Method::GET, &format!("{P}/"), Some(&alice))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(names(list), vec!["Before"]);
        let (_, list) = body(
            app.rest(Method::GET, &format!("{P}/"), Some(&bob))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(names(list), vec!["Bob's"], "never another user's answer");
    }
    // A change through REST, GraphQL or an action shows on the very next read.
    app.rest(Method::PATCH, &format!("{P}/{id}/"), Some(&alice))
        .json(&json!({"name": "After"}))
        .send()
        .await
        .unwrap();
    let (_, list) = body(
        app.rest(Method::GET, &format!("{P}/"), Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(list), vec!["After"]);
    app.gql(
        Some(&alice),
        "mutation($id: ID!) { archivePrinter(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let (_, list) = body(
        app.rest(Method::GET, &format!("{P}/"), Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list, json!([]));
    let (_, one) = body(
        app.rest(Method::GET, &format!("{P}/{id}/"), Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(one["archived_at"].is_string());
    app.gql(
        Some(&alice),
        "mutation($id: ID!) { deletePrinter(id: $id) }",
        json!({"id": id}),
    )
    .await;
    let (status, _) = body(
        app.rest(Method::GET, &format!("{P}/{id}/"), Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "a deleted printer is gone at once");
}

#[tokio::test]
async fn a_users_first_reads_at_once_compute_one_answer_for_all_of_them() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice-first-reads");
    // Her printers are made over GraphQL: the REST paths have never
    // answered her when her first 24 reads arrive together.
    for i in 0..50 {
        app.create_printer(&alice, &format!("p{i}")).await;
    }
    let served = |m: &str| {
        crate::helpers::metric(m, r#"printgate_rest_cache_requests_total{outcome="hit"}"#)
            + crate::helpers::metric(
                m,
                r#"printgate_rest_cache_requests_total{outcome="shared"}"#,
            )
    };
    // 24 connections open first (another user's reads), so hers arrive
    // together rather than one connection setup apart.
    let bob = app.token("bob-first-reads");
    let warm = (0..24).map(|_| app.rest(Method::GET, &format!("{P}/"), Some(&bob)).send());
    futures_util::future::join_all(warm).await;
    let before = served(&app.metrics().await);
    let reads = (0..24).map(|_| async {
        body(
            app.rest(Method::GET, &format!("{P}/"), Some(&alice))
                .send()
                .await
                .unwrap(),
        )
        .await
    });
    let answers = futures_util::future::join_all(reads).await;
    for (status, b) in &answers {
        assert_eq!(*status, 200, "{b}");
        assert_eq!(b, &answers[0].1, "one answer for all");
        assert_eq!(b.as_array().map(Vec::len), Some(50));
    }
    // One computation leads; those that arrived during it wait for the
    // next one (at most one more); everyone else takes what they computed.
    // (Other tests' reads may add to the counters, never take away.)
    let after = served(&app.metrics().await);
    assert!(
        after - before >= 22.0,
        "at most two of 24 first reads computed: {} served by others",
        after - before
    );
}
