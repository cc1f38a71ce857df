//! Printers through GraphQL: every mutation's success and refusal, and what
//! the database holds afterwards.

use chrono::Utc;
use entity::{print, printer};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

const FIELDS: &str = "id name createdAt actionOnFailure watchingEnabled notWatchingReason \
    toolsOffOnPause bedOffOnPause retractOnPause liftZOnPause detectiveSensitivity \
    minTimelapseSecsOnFinish minTimelapseSecsOnCancel authToken archivedAt agentName \
    agentVersion pic { imgUrl } status { raw } settings { raw } currentPrint { id } normalizedP";

const UPDATE: &str = "mutation($id: ID!, $i: UpdatePrinterInput!) { updatePrinter(id: $id, input: $i) { id name retractOnPause liftZOnPause } }";

/// Gives printer `id` a current print, as an agent would have.
async fn start_print(app: &TestApp, id: &str, alerted: bool) -> i32 {
    let printer_id: i32 = id.parse().unwrap();
    let row = print::ActiveModel {
        printer_id: Set(printer_id),
        ext_id: Set(1_700_000_000),
        filename: Set("benchy.gcode".into()),
        started_at: Set(Utc::now()),
        alerted_at: Set(alerted.then(Utc::now)),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap();
    let mut p: printer::ActiveModel = app.stored_printer(id).await.into();
    p.current_print_id = Set(Some(row.id));
    p.update(&app.db).await.unwrap();
    row.id
}

async fn stored_print(app: &TestApp, id: i32) -> print::Model {
    print::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_created_printer_has_the_domain_defaults_and_a_fresh_agent_token() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let body = app
        .gql(
            Some(&token),
            &format!(
                "mutation {{ createPrinter(input: {{name: \"  Prusa MK4  \"}}) {{ {FIELDS} }} }}"
            ),
            json!({}),
        )
        .await;
    let p = &body["data"]["createPrinter"];
    assert_eq!(p["name"], "Prusa MK4", "the name is trimmed: {body}");
    assert_eq!(p["actionOnFailure"], "PAUSE");
    assert_eq!(p["watchingEnabled"], true);
    assert_eq!(p["toolsOffOnPause"], true);
    assert_eq!(p["bedOffOnPause"], false);
    assert_eq!(p["retractOnPause"], 6.5);
    assert_eq!(p["liftZOnPause"], 2.5);
    assert_eq!(p["detectiveSensitivity"], 1.0);
    assert_eq!(p["minTimelapseSecsOnFinish"], 600);
    assert_eq!(p["minTimelapseSecsOnCancel"], 300);
    assert_eq!(p["archivedAt"], Value::Null);
    assert_eq!(p["status"], Value::Null);
    assert_eq!(p["pic"], Value::Null);
    assert_eq!(p["currentPrint"], Value::Null);
    assert_eq!(p["normalizedP"], 0.0);
    assert_eq!(p["notWatchingReason"], "Printer is not actively printing");
    assert_eq!(p["settings"]["raw"]["webcam_streamRatio"], "16:9");
    let token_hex = p["authToken"].as_str().unwrap();
    assert!(token_hex.len() >= 20 && token_hex.chars().all(|c| c.is_ascii_hexdigit()));
    let created = p["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");

    let second = app.create_printer(&token, "Voron").await;
    assert_ne!(app.stored_printer(&second).await.auth_token, token_hex);
}

#[tokio::test]
async fn create_takes_the_optional_fields_and_refuses_bad_ones_without_writing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let ok = app
        .gql(
            Some(&token),
            "mutation { createPrinter(input: {name: \"A\", actionOnFailure: NONE, liftZOnPause: 10}) { actionOnFailure liftZOnPause } }",
            json!({}),
        )
        .await;
    assert_eq!(ok["data"]["createPrinter"]["actionOnFailure"], "NONE");
    assert_eq!(ok["data"]["createPrinter"]["liftZOnPause"], 10.0);

    let bad: [(&str, &str); 5] = [
        ("{name: \"   \"}", "name"),
        ("{name: \"B\", retractOnPause: 100.5}", "retractOnPause"),
        (
            "{name: \"B\", detectiveSensitivity: 1.3}",
            "detectiveSensitivity",
        ),
        (
            "{name: \"B\", minTimelapseSecsOnCancel: -2}",
            "minTimelapseSecsOnCancel",
        ),
        ("{name: \"B\", watchingEnabled: null}", "watchingEnabled"),
    ];
    for (input, field) in bad {
        let body = app
            .gql(
                Some(&token),
                &format!("mutation {{ createPrinter(input: {input}) {{ id }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let long = app
        .gql(
            Some(&token),
            "mutation($n: String!) { createPrinter(input: {name: $n}) { id } }",
            json!({"n": "x".repeat(257)}),
        )
        .await;
    assert_eq!(error_code(&long), "BAD_USER_INPUT");
    let wrong_enum = app
        .gql(
            Some(&token),
            "mutation($i: CreatePrinterInput!) { createPrinter(input: $i) { id } }",
            json!({"i": {"name": "C", "actionOnFailure": "EXPLODE"}}),
        )
        .await;
    assert_eq!(error_code(&wrong_enum), "BAD_USER_INPUT", "{wrong_enum}");
    assert_eq!(
        app.printer_rows().await,
        1,
        "only the valid create wrote a row"
    );
}

#[tokio::test]
async fn update_writes_only_the_given_fields() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let body = app
        .gql(
            Some(&token),
            UPDATE,
            json!({"id": id, "i": {"liftZOnPause": 4.25, "name": " Renamed "}}),
        )
        .await;
    let p = &body["data"]["updatePrinter"];
    assert_eq!(p["name"], "Renamed");
    assert_eq!(p["liftZOnPause"], 4.25);
    assert_eq!(p["retractOnPause"], 6.5, "untouched field keeps its value");

    let empty = app
        .gql(Some(&token), UPDATE, json!({"id": id, "i": {}}))
        .await;
    assert_eq!(empty["data"]["updatePrinter"]["name"], "Renamed");
}

#[tokio::test]
async fn a_refused_update_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let before = app.stored_printer(&id).await;
    let cases = [
        (
            json!({"name": "ok", "retractOnPause": 101}),
            "BAD_USER_INPUT",
            "retractOnPause",
        ),
        (
            json!({"name": "ok", "retractOnPause": "far"}),
            "BAD_USER_INPUT",
            "retractOnPause",
        ),
        (
            json!({"liftZOnPause": 1, "detectiveSensitivity": 0.5}),
            "BAD_USER_INPUT",
            "detectiveSensitivity",
        ),
        (
            json!({"liftZOnPause": 1, "name": null}),
            "BAD_USER_INPUT",
            "name",
        ),
        (
            json!({"liftZOnPause": 1, "name": ""}),
            "BAD_USER_INPUT",
            "name",
        ),
        (
            json!({"liftZOnPause": 1, "minTimelapseSecsOnFinish": 1.5}),
            "BAD_USER_INPUT",
            "minTimelapseSecsOnFinish",
        ),
        (
            json!({"liftZOnPause": 1, "nonsense": true}),
            "BAD_USER_INPUT",
            "nonsense",
        ),
    ];
    for (input, code, field) in cases {
        let body = app
            .gql(Some(&token), UPDATE, json!({"id": id, "i": input}))
            .await;
        assert_eq!(error_code(&body), code, "{input}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{input}: {body}"
        );
    }
    assert_eq!(app.stored_printer(&id).await, before);
}

#[tokio::test]
async fn unknown_and_non_numeric_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    for bad in ["999", "abc", "-1", "99999999999999"] {
        let body = app
            .gql(Some(&token), UPDATE, json!({"id": bad, "i": {"name": "x"}}))
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{bad}: {body}");
        let q = app
            .gql(
                Some(&token),
                "query($id: ID!) { printer(id: $id) { id } }",
                json!({"id": bad}),
            )
            .await;
        assert_eq!(q["data"]["printer"], Value::Null, "{q}");
        for m in [
            "deletePrinter(id: $id)",
            "archivePrinter(id: $id) { id }",
            "pausePrint(id: $id) { succeeded }",
        ] {
            let body = app
                .gql(
                    Some(&token),
                    &format!("mutation($id: ID!) {{ {m} }}"),
                    json!({"id": bad}),
                )
                .await;
            assert_eq!(error_code(&body), "NOT_FOUND", "{m} {bad}: {body}");
        }
    }
    assert_eq!(app.stored_printer(&id).await.name, "Prusa");
}

#[tokio::test]
async fn concurrent_updates_of_different_fields_both_survive() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    for round in 0..10 {
        let lift = f64::from(round) + 0.5;
        let retract = f64::from(round) + 1.25;
        let a = app.gql(
            Some(&token),
            UPDATE,
            json!({"id": id, "i": {"liftZOnPause": lift}}),
        );
        let b = app.gql(
            Some(&token),
            UPDATE,
            json!({"id": id, "i": {"retractOnPause": retract}}),
        );
        let (a, b) = tokio::join!(a, b);
        assert!(a["errors"].is_null() && b["errors"].is_null(), "{a} {b}");
        let stored = app.stored_printer(&id).await;
        assert_eq!(stored.lift_z_on_pause, lift);
        assert_eq!(stored.retract_on_pause, retract);
    }
}

#[tokio::test]
async fn delete_is_soft_and_hides_the_printer_everywhere() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let keep = app.create_printer(&token, "Voron").await;
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { deletePrinter(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(body["data"]["deletePrinter"], id.as_str());
    let list = app
        .gql(
            Some(&token),
            "{ printers(withArchived: true) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(list["data"]["printers"], json!([{"id": keep}]));
    let one = app
        .gql(
            Some(&token),
            "query($id: ID!) { printer(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(one["data"]["printer"], Value::Null);
    assert!(
        app.stored_printer(&id).await.deleted_at.is_some(),
        "the row stays"
    );
    let again = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { deletePrinter(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND");
    let update = app
        .gql(
            Some(&token),
            UPDATE,
            json!({"id": id, "i": {"name": "zombie"}}),
        )
        .await;
    assert_eq!(error_code(&update), "NOT_FOUND");
    assert_eq!(app.stored_printer(&id).await.name, "Prusa");
}

#[tokio::test]
async fn archived_printers_leave_the_default_list_but_stay_reachable() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let a = app.create_printer(&token, "A").await;
    let b = app.create_printer(&token, "B").await;
    let archived = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { archivePrinter(id: $id) { archivedAt } }",
            json!({"id": a}),
        )
        .await;
    let at = archived["data"]["archivePrinter"]["archivedAt"].clone();
    assert!(at.is_string(), "{archived}");
    let twice = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { archivePrinter(id: $id) { archivedAt } }",
            json!({"id": a}),
        )
        .await;
    assert_eq!(
        twice["data"]["archivePrinter"]["archivedAt"], at,
        "the first archive time is kept"
    );

    let list = app
        .gql(Some(&token), "{ printers { id } }", json!({}))
        .await;
    assert_eq!(list["data"]["printers"], json!([{"id": b}]));
    let all = app
        .gql(
            Some(&token),
            "{ printers(withArchived: true) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        all["data"]["printers"],
        json!([{"id": a}, {"id": b}]),
        "ordered by id"
    );
    let one = app
        .gql(
            Some(&token),
            "query($id: ID!) { printer(id: $id) { name } }",
            json!({"id": a}),
        )
        .await;
    assert_eq!(one["data"]["printer"]["name"], "A");

    let back = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { unarchivePrinter(id: $id) { archivedAt } }",
            json!({"id": a}),
        )
        .await;
    assert_eq!(back["data"]["unarchivePrinter"]["archivedAt"], Value::Null);
    let list = app
        .gql(Some(&token), "{ printers { id } }", json!({}))
        .await;
    assert_eq!(list["data"]["printers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn actions_without_a_current_print_change_nothing_and_do_not_succeed() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let before = app.stored_printer(&id).await;
    for action in [
        "cancelPrint(id: $id)",
        "pausePrint(id: $id)",
        "resumePrint(id: $id)",
        "muteCurrentPrint(id: $id)",
        "acknowledgeAlert(id: $id, alertOverwrite: FAILED)",
    ] {
        let body = app
            .gql(
                Some(&token),
                &format!("mutation($id: ID!) {{ r: {action} {{ succeeded printer {{ id currentPrint {{ id }} }} }} }}"),
                json!({"id": id}),
            )
            .await;
        assert_eq!(body["data"]["r"]["succeeded"], false, "{action}: {body}");
        assert_eq!(body["data"]["r"]["printer"]["id"], id.as_str());
    }
    assert_eq!(app.stored_printer(&id).await, before);
}

#[tokio::test]
async fn commands_to_an_offline_agent_do_not_succeed_and_record_no_verdict() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let print_id = start_print(&app, &id, true).await;
    let print_before = stored_print(&app, print_id).await;
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { cancelPrint(id: $id) { succeeded printer { currentPrint { alertOverwrite alertAcknowledgedAt } } } }",
            json!({"id": id}),
        )
        .await;
    let r = &body["data"]["cancelPrint"];
    assert_eq!(r["succeeded"], false, "no agent is connected: {body}");
    assert!(
        r["printer"]["currentPrint"]["alertOverwrite"].is_null(),
        "{body}"
    );
    assert!(r["printer"]["currentPrint"]["alertAcknowledgedAt"].is_null());
    assert_eq!(
        stored_print(&app, print_id).await,
        print_before,
        "an undelivered cancel records no verdict and no acknowledgement"
    );
    let resume = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { resumePrint(id: $id) { succeeded } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(resume["data"]["resumePrint"]["succeeded"], false);
    assert_eq!(stored_print(&app, print_id).await, print_before);

    let pause = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { pausePrint(id: $id) { succeeded } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(pause["data"]["pausePrint"]["succeeded"], false);
    assert!(stored_print(&app, print_id).await.paused_at.is_none());
}

#[tokio::test]
async fn mute_and_acknowledge_work_on_the_current_print() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let id = app.create_printer(&token, "Prusa").await;
    let print_id = start_print(&app, &id, true).await;
    let muted = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { muteCurrentPrint(id: $id) { succeeded printer { currentPrint { alertMutedAt } } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        muted["data"]["muteCurrentPrint"]["succeeded"], true,
        "{muted}"
    );
    assert!(
        muted["data"]["muteCurrentPrint"]["printer"]["currentPrint"]["alertMutedAt"].is_string()
    );
    assert!(stored_print(&app, print_id).await.alert_muted_at.is_some());

    let unmuted = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { muteCurrentPrint(id: $id, mute: false) { succeeded } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(unmuted["data"]["muteCurrentPrint"]["succeeded"], true);
    assert!(stored_print(&app, print_id).await.alert_muted_at.is_none());

    let ack = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { acknowledgeAlert(id: $id, alertOverwrite: NOT_FAILED) { succeeded } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(ack["data"]["acknowledgeAlert"]["succeeded"], true);
    let stored = stored_print(&app, print_id).await;
    assert_eq!(stored.alert_overwrite.as_deref(), Some("NOT_FAILED"));
    assert!(stored.alert_acknowledged_at.is_some());

    let bad = app
        .gql(
            Some(&token),
            "mutation($id: ID!, $v: AlertOverwrite) { acknowledgeAlert(id: $id, alertOverwrite: $v) { succeeded } }",
            json!({"id": id, "v": "MAYBE"}),
        )
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT", "{bad}");
    assert_eq!(
        stored_print(&app, print_id).await,
        stored,
        "a refused acknowledge writes nothing"
    );
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once_without_its_name_in_the_message() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let body = app
        .gql(
            Some(&token),
            "mutation { createPrinter(input: {name: \"  \", retractOnPause: 100.5, detectiveSensitivity: 2, watchingEnabled: null}) { id } }",
            json!({}),
        )
        .await;
    let errors = body["errors"].as_array().unwrap();
    let mut fields: Vec<&str> = errors
        .iter()
        .map(|e| e["extensions"]["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "detectiveSensitivity",
            "name",
            "retractOnPause",
            "watchingEnabled"
        ],
        "{body}"
    );
    for e in errors {
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT");
        let field = e["extensions"]["field"].as_str().unwrap();
        let message = e["message"].as_str().unwrap();
        assert!(!message.contains(field), "{message} repeats {field}");
        assert!(e["extensions"].get("printgateFields").is_none());
    }
    assert_eq!(
        app.printer_rows().await,
        0,
        "a refused create wrote nothing"
    );

    // REST: one 400 body naming every field, in the client's names.
    let id = app.create_printer(&token, "Kept").await;
    let resp = app
        .rest(
            reqwest::Method::PATCH,
            &format!("/api/v1/printers/{id}/"),
            Some(&token),
        )
        .json(&json!({"name": "", "lift_z_on_pause": -1, "min_timelapse_secs_on_finish": -5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["lift_z_on_pause", "min_timelapse_secs_on_finish", "name"],
        "{body}"
    );
    assert!(body["name"][0].as_str().unwrap().contains("blank"));
    assert_eq!(app.stored_printer(&id).await.name, "Kept");
}

#[tokio::test]
async fn the_agent_token_is_read_only_on_purpose_and_rest_keeps_it() {
    let app = TestApp::spawn().await;
    let t = app.token("alice");
    let made = app
        .gql(
            Some(&t),
            "mutation { createPrinter(input: {name: \"P\"}) { id authToken } }",
            json!({}),
        )
        .await;
    let id = made["data"]["createPrinter"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = made["data"]["createPrinter"]["authToken"]
        .as_str()
        .expect("shown once, on creation")
        .to_owned();
    // Not in reads.
    let list = app
        .gql(Some(&t), "{ printers { id authToken } }", json!({}))
        .await;
    assert_eq!(
        list["data"]["printers"][0]["authToken"],
        Value::Null,
        "{list}"
    );
    let one = app
        .gql(
            Some(&t),
            "query($id: ID!) { printer(id: $id) { authToken } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(one["data"]["printer"]["authToken"], Value::Null);
    // On purpose.
    let creds = app
        .gql(
            Some(&t),
            "query($id: ID!) { printerCredentials(id: $id) { printerId authToken } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        creds["data"]["printerCredentials"]["authToken"],
        token.as_str()
    );
    let foreign = app
        .gql(
            Some(&app.token("bob")),
            "query($id: ID!) { printerCredentials(id: $id) { authToken } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(foreign["data"]["printerCredentials"], Value::Null);
    // The REST body keeps auth_token, as the seed says.
    let rest: Value = app
        .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&t))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest[0]["auth_token"], token.as_str());
    // A new token: the old one no longer opens the agent endpoints.
    let new = app
        .gql(
            Some(&t),
            "mutation($id: ID!) { regeneratePrinterToken(id: $id) { authToken } }",
            json!({"id": id}),
        )
        .await;
    let new = new["data"]["regeneratePrinterToken"]["authToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, token);
    let status = |auth: String| {
        let req = app
            .client
            .get(format!("{}/api/v1/octo/printer/", app.url))
            .header("authorization", format!("Token {auth}"));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(token.clone()).await, 401);
    assert_eq!(status(new.clone()).await, 200);
    assert_eq!(app.stored_printer(&id).await.auth_token, new);
}
