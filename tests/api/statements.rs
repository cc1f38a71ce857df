//! Relations resolve through DataLoaders: listing 500 printers with their
//! current prints runs exactly as many SQL statements as listing one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::Request;
use chrono::Utc;
use entity::{print, printer};
use printgate::auth::{Claims, Identity};
use printgate::config::DatabaseConfig;
use printgate::events::LocalBus;
use printgate::gateway::Gateway;
use printgate::service::{NoAgents, Service};
use printgate::urls::UrlSigner;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

const QUERY: &str = "{ printers { id name notWatchingReason status { raw } settings { raw } \
    currentPrint { id filename printerId endedAt alertMutedAt } } }";

/// Seeds `n` printers for one user, each with a current print, and returns
/// how many statements listing them takes, the first time and again with
/// nothing changed (then every printer is kept: only revisions are read).
async fn statements_for(n: usize) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let (url, _pg) = crate::helpers::fresh_database(dir.path()).await;
    let mut db = printgate::database::connect(&DatabaseConfig::new(url, 2))
        .await
        .unwrap();
    printgate::database::migrate(&db).await.unwrap();
    let seen = counter.clone();
    db.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let service = Service::new(
        db.clone(),
        Arc::new(NoAgents),
        Arc::new(LocalBus::default()),
    );
    let viewer = service.viewer("alice", None).await.unwrap();
    for i in 0..n {
        let p = service
            .create_printer(
                &viewer,
                printgate::service::NewPrinter {
                    name: format!("printer {i}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let pr = print::ActiveModel {
            printer_id: Set(p.id),
            ext_id: Set(1_700_000_000 + i as i64),
            filename: Set(format!("part{i}.gcode")),
            started_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        let mut p: printer::ActiveModel = p.into();
        p.current_print_id = Set(Some(pr.id));
        p.update(&db).await.unwrap();
    }
    let gateway = Gateway::new(
        service,
        Arc::new(UrlSigner::new(b"k".to_vec(), "")),
        Default::default(),
        &Default::default(),
    );
    let identity = Identity::Verified(Claims {
        sub: "alice".into(),
        email: None,
        exp: Some(i64::MAX),
        iat: None,
    });
    // The viewer as a request would find it, whatever the seeding took
    // (the viewer cache's TTL must not decide the count).
    gateway.service().viewer("alice", None).await.unwrap();
    counter.store(0, Ordering::SeqCst);
    let resp = gateway.execute(identity.clone(), Request::new(QUERY)).await;
    let used = counter.load(Ordering::SeqCst);
    // Again fresh: a slow first list (500 printers on a loaded machine)
    // can outlast the viewer cache's TTL, and that is not a list statement.
    gateway.service().viewer("alice", None).await.unwrap();
    counter.store(0, Ordering::SeqCst);
    let again = gateway.execute(identity, Request::new(QUERY)).await;
    let used_again = counter.load(Ordering::SeqCst);
    assert_eq!(
        again.data.clone().into_json().unwrap(),
        resp.data.clone().into_json().unwrap(),
        "kept printers answer as read ones did"
    );
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
    let data = resp.data.into_json().unwrap();
    let list = data["printers"].as_array().unwrap();
    assert_eq!(list.len(), n);
    assert!(
        list.iter()
            .all(|p| p["currentPrint"]["filename"].is_string())
    );
    assert_eq!(
        printer::Entity::find().all(&db).await.unwrap().len(),
        n,
        "seeded rows"
    );
    (used, used_again)
}

#[tokio::test]
async fn listing_500_printers_runs_no_more_statements_than_listing_one() {
    let (one, one_again) = statements_for(1).await;
    let (many, many_again) = statements_for(500).await;
    assert_eq!(
        (one, one_again),
        (many, many_again),
        "1 printer: {one} statements, 500 printers: {many}"
    );
    assert!(
        one_again < one,
        "kept printers read neither rows nor prints: {one_again} of {one}"
    );
    // The list reads its printers' revisions, then the rows it has not
    // kept (all of them, the first time), then their current prints.
    assert!(
        one <= 4,
        "(viewer) + revisions + printers + prints, got {one}"
    );
}

/// Alice's identity, and `n` streams of `subscription` run as her through
/// a gateway over `service`, each already listening.
fn alice_subscribers(
    service: &Service,
    subscription: &str,
    n: usize,
) -> Vec<futures_util::stream::BoxStream<'static, async_graphql::Response>> {
    use futures_util::{FutureExt, StreamExt};
    let gateway = Gateway::new(
        service.clone(),
        Arc::new(UrlSigner::new(b"k".to_vec(), "")),
        Default::default(),
        &Default::default(),
    );
    let identity = Identity::Verified(Claims {
        sub: "alice".into(),
        email: None,
        exp: Some(i64::MAX),
        iat: None,
    });
    (0..n)
        .map(|_| {
            let ctx = printgate::graphql::RequestContext::new(identity.clone(), service.clone());
            let req = printgate::graphql::with_request_data(Request::new(subscription), &ctx);
            let mut s = gateway.schema().execute_stream(req).boxed();
            // Run the resolver up to its first wait, so it listens.
            assert!(s.next().now_or_never().is_none());
            s
        })
        .collect()
}

#[tokio::test]
async fn one_event_costs_one_read_however_many_subscribe_to_it() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let (url, _pg) = crate::helpers::fresh_database(dir.path()).await;
    let mut db = printgate::database::connect(&DatabaseConfig::new(url, 2))
        .await
        .unwrap();
    printgate::database::migrate(&db).await.unwrap();
    let seen = counter.clone();
    db.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let service = Service::new(db, Arc::new(NoAgents), Arc::new(LocalBus::default()));
    let viewer = service.viewer("alice", None).await.unwrap();
    let p = service
        .create_printer(
            &viewer,
            printgate::service::NewPrinter {
                name: "P".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut streams =
        alice_subscribers(&service, "subscription { printerUpdated { id name } }", 20);
    service
        .update_printer(
            &viewer,
            p.id,
            printgate::service::PrinterPatch {
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let after_write = counter.load(Ordering::SeqCst);
    for s in &mut streams {
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap();
        let data = r.data.into_json().unwrap();
        assert_eq!(data["printerUpdated"]["name"], "renamed");
    }
    let reads = counter.load(Ordering::SeqCst) - after_write;
    assert_eq!(reads, 1, "20 subscribers, one event: {reads} reads");
}

/// A service on a fresh database whose every statement is recorded.
struct Recorded {
    service: Service,
    db: sea_orm::DatabaseConnection,
    statements: Arc<std::sync::Mutex<Vec<String>>>,
}

/// [`Recorded`], and what must live as long as it (the database's files).
async fn recorded() -> (
    Recorded,
    (tempfile::TempDir, Option<crate::helpers::FreshPostgres>),
) {
    let dir = tempfile::tempdir().unwrap();
    let statements = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (url, pg) = crate::helpers::fresh_database(dir.path()).await;
    let mut db = printgate::database::connect(&DatabaseConfig::new(url, 2))
        .await
        .unwrap();
    printgate::database::migrate(&db).await.unwrap();
    let seen = statements.clone();
    db.set_metric_callback(move |m| {
        seen.lock().unwrap().push(m.statement.sql.clone());
    });
    let service = Service::new(
        db.clone(),
        Arc::new(NoAgents),
        Arc::new(LocalBus::default()),
    );
    (
        Recorded {
            service,
            db,
            statements,
        },
        (dir, pg),
    )
}

#[tokio::test]
async fn plain_statuses_are_written_together_and_heard_with_no_read() {
    use futures_util::StreamExt;
    use printgate::service::{AgentSession, StatusReport};
    use serde_json::json;
    let (recorded, _keep) = recorded().await;
    let Recorded {
        service,
        db,
        statements,
    } = recorded;
    let viewer = service.viewer("alice", None).await.unwrap();
    let p = service
        .create_printer(
            &viewer,
            printgate::service::NewPrinter {
                name: "P".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let status = |ts: f64| StatusReport {
        status: Some(json!({"_ts": ts, "state": {"text": "Printing"}})),
        ..Default::default()
    };
    service.agent_connected(&p).await.unwrap();
    let mut session = AgentSession::new(p.id);
    // The session's first report takes the full path (it learns the print).
    service
        .agent_report(&mut session, status(1.0))
        .await
        .unwrap();
    let mut streams = alice_subscribers(
        &service,
        "subscription { printerUpdated { id status { raw } } }",
        20,
    );
    statements.lock().unwrap().clear();
    for ts in 2..=51 {
        service
            .agent_report(&mut session, status(f64::from(ts)))
            .await
            .unwrap();
    }
    // A late status (an older `_ts`) never wins.
    service
        .agent_report(&mut session, status(10.0))
        .await
        .unwrap();
    for s in &mut streams {
        let mut last = 0.0;
        while last < 51.0 {
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
                .await
                .expect("the newest status reaches every subscriber")
                .unwrap();
            let data = r.data.into_json().unwrap();
            let Some(ts) = data["printerUpdated"]["status"]["raw"]["_ts"].as_f64() else {
                panic!("a status: {data}");
            };
            assert!(ts > last, "in order: {ts} after {last}");
            last = ts;
        }
    }
    let sql = statements.lock().unwrap().clone();
    let selects: Vec<&String> = sql
        .iter()
        .filter(|s| s.trim_start().starts_with("SELECT"))
        .collect();
    assert!(
        selects.is_empty(),
        "no reads for plain statuses or their subscribers: {selects:?}"
    );
    let updates = sql
        .iter()
        .filter(|s| s.trim_start().starts_with("UPDATE"))
        .count();
    assert!(updates <= 51, "one update per status at most: {updates}");
    let stored = printer::Entity::find_by_id(p.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.status.unwrap()["_ts"],
        51.0,
        "the newest status is stored"
    );
}

#[tokio::test]
async fn a_subscriber_behind_the_bus_gets_each_printer_once_at_its_newest_without_reading() {
    use futures_util::StreamExt;
    use printgate::service::{AgentSession, StatusReport};
    use serde_json::json;
    let (recorded, _keep) = recorded().await;
    let Recorded {
        service,
        db,
        statements,
    } = recorded;
    let viewer = service.viewer("alice", None).await.unwrap();
    let mut sessions = Vec::new();
    for name in ["A", "B"] {
        let p = service
            .create_printer(
                &viewer,
                printgate::service::NewPrinter {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        service.agent_connected(&p).await.unwrap();
        sessions.push((p.id, AgentSession::new(p.id)));
    }
    let status = |ts: f64| StatusReport {
        status: Some(json!({"_ts": ts, "state": {"text": "Printing"}})),
        ..Default::default()
    };
    for (_, session) in &mut sessions {
        service.agent_report(session, status(1.0)).await.unwrap();
    }
    let mut streams = alice_subscribers(
        &service,
        "subscription { printerUpdated { id status { raw } } }",
        5,
    );
    // The subscribers do not read while 50 statuses per printer land.
    for ts in 2..=51 {
        for (_, session) in &mut sessions {
            service
                .agent_report(session, status(f64::from(ts)))
                .await
                .unwrap();
        }
    }
    let started = std::time::Instant::now();
    loop {
        let stored = entity::printer::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s["_ts"].as_f64()) == Some(51.0))
            .count();
        if stored == 2 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "the statuses were not written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    statements.lock().unwrap().clear();
    for s in &mut streams {
        let mut got = Vec::new();
        while let Ok(Some(r)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), s.next()).await
        {
            let data = r.data.into_json().unwrap();
            got.push((
                data["printerUpdated"]["id"].as_str().unwrap().to_owned(),
                data["printerUpdated"]["status"]["raw"]["_ts"]
                    .as_f64()
                    .unwrap(),
            ));
        }
        // Each printer once, at its newest, not 50 steps each.
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|(_, ts)| *ts == 51.0), "{got:?}");
    }
    let selects: Vec<String> = statements
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trim_start().starts_with("SELECT"))
        .cloned()
        .collect();
    assert!(
        selects.is_empty(),
        "a subscriber catching up reads nothing: {selects:?}"
    );
}
