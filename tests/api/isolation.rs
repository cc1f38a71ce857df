//! One user never sees or touches another user's printers, by any query or
//! mutation.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn bob_can_neither_see_nor_change_alices_printers() {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    let id = app.create_printer(&alice, "Alice's Prusa").await;
    let before = app.stored_printer(&id).await;

    let list = app
        .gql(
            Some(&bob),
            "{ printers(withArchived: true) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(list["data"]["printers"], json!([]));
    let one = app
        .gql(
            Some(&bob),
            "query($id: ID!) { printer(id: $id) { id authToken } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(one["data"]["printer"], Value::Null);

    let mutations = [
        "updatePrinter(id: $id, input: {name: \"mine now\", watchingEnabled: false}) { id }",
        "deletePrinter(id: $id)",
        "archivePrinter(id: $id) { id }",
        "unarchivePrinter(id: $id) { id }",
        "cancelPrint(id: $id) { succeeded }",
        "pausePrint(id: $id) { succeeded }",
        "resumePrint(id: $id) { succeeded }",
        "muteCurrentPrint(id: $id) { succeeded }",
        "acknowledgeAlert(id: $id, alertOverwrite: FAILED) { succeeded }",
    ];
    for m in mutations {
        let body = app
            .gql(
                Some(&bob),
                &format!("mutation($id: ID!) {{ {m} }}"),
                json!({"id": id}),
            )
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{m}: {body}");
        assert_eq!(
            body["errors"][0]["message"], "Not found.",
            "same answer as a missing id"
        );
    }
    assert_eq!(
        app.stored_printer(&id).await,
        before,
        "nothing of Alice's changed"
    );

    let mine = app
        .gql(Some(&alice), "{ printers { id name } }", json!({}))
        .await;
    assert_eq!(
        mine["data"]["printers"],
        json!([{"id": id, "name": "Alice's Prusa"}])
    );
}
