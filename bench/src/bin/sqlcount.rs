//! Counts the SQL statements printgate runs for the benchmark's read
//! requests: the REST list (3 and 50 printers) and detail routes, executed
//! through the gateway exactly as the REST layer runs them (the GraphQL
//! requests run the same operations, so they count the same). Prints JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{Request, Variables};
use printgate::auth::{Claims, Identity};
use printgate::config::DatabaseConfig;
use printgate::events::LocalBus;
use printgate::gateway::Gateway;
use printgate::rest::routes::ROUTES;
use printgate::service::{NewPrinter, NoAgents, Service};
use printgate::urls::UrlSigner;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("count.db").display()
    );
    let mut db = printgate::database::connect(&DatabaseConfig::new(url, 2)).await?;
    printgate::database::migrate(&db).await?;
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    db.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let service = Service::new(db, Arc::new(NoAgents), Arc::new(LocalBus::default()));
    let gateway = Gateway::new(
        service.clone(),
        Arc::new(UrlSigner::new(b"k".to_vec(), "")),
        Default::default(),
        &Default::default(),
    );
    let mut first = Vec::new();
    for (sub, n) in [("three", 3), ("fifty", 50)] {
        let viewer = service
            .viewer(sub, None)
            .await
            .map_err(|e| format!("{e:?}"))?;
        for i in 0..n {
            let p = service
                .create_printer(
                    &viewer,
                    NewPrinter {
                        name: format!("p{i}"),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("{e:?}"))?;
            if i == 0 {
                first.push(p.id);
            }
        }
    }
    let route = |id: &str| {
        ROUTES
            .iter()
            .find(|r| r.operation_id == id)
            .map(|r| r.document)
    };
    let cases = [
        (
            "rest_list_3",
            "three",
            route("listPrinters"),
            json!({"withArchived": false}),
        ),
        (
            "rest_list_50",
            "fifty",
            route("listPrinters"),
            json!({"withArchived": false}),
        ),
        (
            "rest_detail",
            "three",
            route("getPrinter"),
            json!({"id": first[0].to_string()}),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, sub, doc, vars) in cases {
        let doc = doc.ok_or("route missing")?;
        let identity = Identity::Verified(Claims {
            sub: sub.into(),
            email: None,
            exp: None,
            iat: None,
        });
        counter.store(0, Ordering::SeqCst);
        let resp = gateway
            .execute(
                identity,
                Request::new(doc).variables(Variables::from_json(vars)),
            )
            .await;
        if !resp.errors.is_empty() {
            return Err(format!("{name}: {:?}", resp.errors).into());
        }
        out.insert(name.into(), json!(counter.load(Ordering::SeqCst)));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
