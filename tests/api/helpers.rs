//! Test harness: spawn the app on a fresh SQLite database, mint tokens, run
//! GraphQL, and look at the database directly to check what was written.

use std::time::Duration;

use printgate::Application;
use printgate::auth::JwtKeys;
use printgate::config::{Config, DatabaseConfig, JwtConfig};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-for-printgate-0123456789";
/// The token that opens `/metrics` on the test apps.
pub const METRICS_TOKEN: &str = "metrics-token-for-tests";

pub struct TestApp {
    pub url: String,
    /// The database the app runs on (another instance can share it).
    pub database_url: String,
    pub client: reqwest::Client,
    pub keys: JwtKeys,
    pub db: DatabaseConnection,
    /// The app's instance id (what `agent_instance` names while one of its
    /// agents is connected: the presence sweep leaves those printers be).
    pub instance: String,
    _dir: tempfile::TempDir,
    _pg: Option<FreshPostgres>,
}

/// The environment variable naming a PostgreSQL server for the tests.
pub const PG_ENV: &str = "PRINTGATE_TEST_DATABASE_URL";

/// A database created for one test on the PostgreSQL server named by
/// `PRINTGATE_TEST_DATABASE_URL`, dropped when the test ends.
pub struct FreshPostgres {
    pub url: String,
    admin_url: String,
    name: String,
}

impl FreshPostgres {
    pub async fn create(admin_url: &str) -> Self {
        use sea_orm::ConnectionTrait;
        let name = format!("printgate_t_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url)
            .await
            .expect("admin connection");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let _ = admin.close().await;
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url, String::new()),
        };
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        Self {
            url: format!("{base}/{name}{query}"),
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime: use a small one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sea_orm::ConnectionTrait;
                    if let Ok(admin) = sea_orm::Database::connect(admin_url.as_str()).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// A fresh database for one test: PostgreSQL when `PRINTGATE_TEST_DATABASE_URL`
/// is set, else a SQLite file in `dir`.
pub async fn fresh_database(dir: &std::path::Path) -> (String, Option<FreshPostgres>) {
    match std::env::var(PG_ENV).ok().filter(|u| !u.is_empty()) {
        Some(admin) => {
            let pg = FreshPostgres::create(&admin).await;
            (pg.url.clone(), Some(pg))
        }
        None => (
            format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
            None,
        ),
    }
}

/// The config of a fresh app on port 0 using the database at `url`.
pub fn test_config(dir: &std::path::Path, url: String) -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        public_url: String::new(),
        schema: Default::default(),
        graphiql: true,
        rate_limits: Default::default(),
        request_timeout: std::time::Duration::from_secs(30),
        cors_origins: Vec::new(),
        trusted_documents: None,
        detection: None,
        webhooks: Default::default(),
        guards: printgate::config::Guards {
            metrics_token: Some(METRICS_TOKEN.into()),
            ..Default::default()
        },
        database: DatabaseConfig::new(url, 5),
        jwt: JwtConfig {
            secret: Some(SECRET.into()),
            public_key: None,
            issuer: None,
            audience: None,
            url_secret: None,
            production: false,
            dev_secret_path: dir.join("secret"),
            jwks_url: None,
            claims: Default::default(),
        },
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(None).await
    }

    /// An app on an existing database (another instance of a cluster), or
    /// on a fresh one.
    pub async fn spawn_on(database_url: Option<String>) -> Self {
        Self::spawn_with(database_url, |_| {}).await
    }

    /// An app whose config `adjust` changes first (limits, production mode).
    pub async fn spawn_with(
        database_url: Option<String>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db_url, pg) = match database_url {
            Some(u) => (u, None),
            None => fresh_database(dir.path()).await,
        };
        let database_url = db_url.clone();
        let mut config = test_config(dir.path(), db_url);
        adjust(&mut config);
        let app = Application::build(config).await.expect("app builds");
        let url = format!("http://{}", app.local_addr().expect("bound"));
        let db = app.state().gateway.service().db().clone();
        let instance = app.state().gateway.service().instance().to_owned();
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            url,
            database_url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            keys: JwtKeys::from_secret(SECRET.as_bytes()),
            db,
            instance,
            _dir: dir,
            _pg: pg,
        }
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.keys
            .mint(sub, None, Duration::from_secs(3600))
            .expect("mint")
    }

    /// POSTs a GraphQL operation and returns the JSON body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200, "GraphQL over application/json is 200");
        resp.json().await.expect("json body")
    }

    /// Creates a printer as `token`'s user and returns its id.
    pub async fn create_printer(&self, token: &str, name: &str) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($n: String!) { createPrinter(input: {name: $n}) { id } }",
                json!({"n": name}),
            )
            .await;
        body["data"]["createPrinter"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("create failed: {body}"))
            .to_owned()
    }

    /// The printer row as stored.
    pub async fn stored_printer(&self, id: &str) -> entity::printer::Model {
        let id: i32 = id.parse().expect("numeric id");
        entity::printer::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query")
            .expect("row exists")
    }

    pub async fn printer_rows(&self) -> u64 {
        entity::printer::Entity::find()
            .count(&self.db)
            .await
            .expect("count")
    }

    pub async fn user_rows(&self) -> u64 {
        entity::user::Entity::find()
            .count(&self.db)
            .await
            .expect("count")
    }
}

impl TestApp {
    /// A REST request to `path` (under the app's URL) as `token`'s user.
    pub fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let req = self.client.request(method, format!("{}{path}", self.url));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Gives printer `id` a current print started at a fixed time, as an
    /// agent would have; returns the print's id.
    pub async fn start_print(&self, id: &str, alerted: bool) -> i32 {
        use sea_orm::{ActiveModelTrait, Set};
        let fixed = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let row = entity::print::ActiveModel {
            printer_id: Set(id.parse().unwrap()),
            ext_id: Set(1_735_787_045),
            filename: Set("benchy.gcode".into()),
            started_at: Set(fixed),
            alerted_at: Set(alerted.then_some(fixed)),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .unwrap();
        let mut p: entity::printer::ActiveModel = self.stored_printer(id).await.into();
        p.current_print_id = Set(Some(row.id));
        p.update(&self.db).await.unwrap();
        row.id
    }

    /// The app's `/metrics` text (with the metrics token).
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stored_print(&self, id: i32) -> entity::print::Model {
        entity::print::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .unwrap()
            .unwrap()
    }
}

/// The value of one metric line (the sum when several lines match).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The single error's code of a GraphQL response.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// A websocket to `/graphql/ws` speaking graphql-transport-ws, optionally
/// with an `Authorization` header on the upgrade request.
pub async fn graphql_ws(base: &str, authorization: Option<&str>) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}/graphql/ws", base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    if let Some(a) = authorization {
        req.headers_mut()
            .insert("authorization", a.parse().expect("header"));
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake")
        .0
}

/// A printer agent's websocket (`/ws/dev/`) with agent token `auth`.
pub async fn agent_ws(base: &str, auth: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}/ws/dev/", base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("bearer {auth}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake")
        .0
}

/// A client websocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close code a websocket ends with (skipping other messages), within
/// `secs` seconds; `None` when it ended without a close frame.
pub async fn close_code(ws: &mut Ws, secs: u64) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("the socket did not close within {secs} s"))
}

/// Sends a JSON message on a client websocket.
pub async fn ws_send(ws: &mut Ws, v: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        v.to_string().into(),
    ))
    .await
    .expect("send");
}

/// The next JSON text message of a client websocket (pings skipped).
pub async fn ws_next_json(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

/// An instance in its own process, so that it can really crash.
pub struct Process {
    pub child: std::process::Child,
    pub url: String,
}

impl Process {
    // The child is killed and waited for in `Drop`, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[]).await
    }

    /// With more environment variables (settings) for the instance.
    #[allow(clippy::zombie_processes)]
    pub async fn start_with(database_url: &str, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_printgate"))
            .arg("serve")
            .env("PRINTGATE_BIND", format!("127.0.0.1:{port}"))
            .env("PRINTGATE_DATABASE_URL", database_url)
            .env("PRINTGATE_JWT_SECRET", SECRET)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return Self { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("instance did not start");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; taken by whoever binds
/// it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A printgate subcommand in its own process with its stdout read to the
/// end (a closed pipe would end it), line by line, trimmed; killed when
/// dropped.
pub struct Spawned {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Spawned {
    #[allow(clippy::zombie_processes)]
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_printgate"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line.trim().to_owned());
            }
        });
        Self { child, lines }
    }

    /// The next line printed within `within`, if any.
    pub fn next_line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// The first line (from now) that `wanted` accepts, within `secs`.
    pub fn line_where(&self, secs: u64, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.next_line(left) {
                Some(line) if wanted(&line) => return line,
                Some(_) => {}
                None => break,
            }
        }
        panic!("no such line within {secs} s");
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
