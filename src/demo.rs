//! `printgate demo`: a server on a fresh embedded database with a demo user
//! and a few printers whose simulated agents print, pause and finish, so a
//! newcomer sees printgate alive in one command.

use std::time::Duration;

use clap::Args;

use crate::app::{Application, StartupError, shutdown_signal};
use crate::config::{DatabaseConfig, JwtConfig};
use crate::service::NewPrinter;
use crate::simulate::{self, SimulateArgs};

/// The demo user's `sub` and email.
pub const DEMO_USER: &str = "demo@printgate.local";
const NAMES: &[&str] = &[
    "Prusa MK4",
    "Voron 2.4",
    "Bambu X1C",
    "Ender 3 V3",
    "RatRig V-Core",
    "Prusa Mini",
];

/// Arguments of `printgate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many simulated printers.
    #[arg(long, default_value_t = 4)]
    pub printers: usize,
    /// Where the demo's webhook endpoint posts every event (start
    /// `printgate webhook-receiver` there, as the demo says).
    #[arg(long, default_value = "http://127.0.0.1:8788/webhook")]
    pub webhook_url: String,
    /// Time between each printer's status messages.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub server: crate::config::ServerArgs,
    #[command(flatten)]
    pub secret: crate::config::JwtSecretArg,
}

/// Runs the demo until Ctrl-C, with every serve flag as given (`--bind`,
/// `--cors-origins`, `--public-url`, limits, ...) except what makes it a
/// demo: a fresh SQLite database, a token it mints (with the configured
/// secret, else a random one), GraphiQL on, development mode, and a
/// simulated ML service.
pub async fn run(args: DemoArgs) -> Result<(), StartupError> {
    let dir = std::env::temp_dir().join(format!("printgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut config = crate::config::Settings {
        server: args.server.clone(),
        database: Default::default(),
        jwt: crate::config::JwtArgs {
            secret: args.secret.clone(),
            ..Default::default()
        },
        env: Default::default(),
    }
    .config();
    config.graphiql = true;
    config.schema.introspection = true;
    config.database = DatabaseConfig::new(
        format!("sqlite://{}?mode=rwc", dir.join("demo.db").display()),
        5,
    );
    config.jwt = JwtConfig {
        secret: Some(
            config
                .jwt
                .secret
                .clone()
                .unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>())),
        ),
        public_key: None,
        issuer: None,
        audience: None,
        url_secret: config.jwt.url_secret.clone(),
        production: false,
        dev_secret_path: dir.join("secret"),
        jwks_url: None,
        claims: Default::default(),
    };
    config.webhooks.settings.allow_private_targets = true;
    config.webhooks.worker.allow_private_targets = true;
    // A simulated ML service in process, so detection runs with no setup.
    let (ml_listener, ml_router) = crate::mlsim::bind(&crate::mlsim::MlSimArgs {
        bind: "127.0.0.1:0".into(),
        token: None,
    })
    .await?;
    let ml_url = format!("http://{}", ml_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(ml_listener, ml_router).await });
    config.detection = Some(crate::detection::DetectionConfig {
        ml_api_url: ml_url,
        ml_api_token: None,
        ml_timeout: Duration::from_secs(5),
        image_base: String::new(),
        // Every frame is judged, so the failure shows within a minute.
        settings: crate::service::detection::DetectionSettings {
            min_interval: Duration::ZERO,
            alert_cooldown: Duration::from_secs(90),
        },
        queue: 64,
        concurrency: 2,
    });
    // Short retries: a receiver started after an event still gets it soon.
    config.webhooks.settings.retry_schedule = [0, 2, 5, 10, 30, 60, 120, 300, 600, 1800]
        .into_iter()
        .map(Duration::from_secs)
        .collect();
    let public_url = config.public_url.clone();
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    let service = app.state().gateway.service().clone();
    let keys = app.state().keys.clone();
    let server = tokio::spawn(app.run_until(shutdown_signal()));

    let viewer = service
        .viewer(DEMO_USER, Some(DEMO_USER))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut tokens = Vec::new();
    for i in 0..args.printers {
        let name = NAMES
            .get(i)
            .map_or_else(|| format!("Printer {}", i + 1), |n| (*n).to_owned());
        let p = service
            .create_printer(
                &viewer,
                NewPrinter {
                    name,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("{e:?}"))?;
        tokens.push(p.auth_token);
    }
    let (_, secret) = service
        .create_webhook(
            &viewer,
            crate::service::webhooks::NewWebhook {
                url: args.webhook_url.clone(),
                events: crate::service::webhooks::types::ALL
                    .iter()
                    .map(|t| (*t).to_owned())
                    .collect(),
                description: Some("printgate demo".into()),
            },
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    let listen = reqwest::Url::parse(&args.webhook_url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| "127.0.0.1:8788".into());
    let token = keys.mint(DEMO_USER, Some(DEMO_USER), Duration::from_secs(12 * 3600))?;
    let base = format!("http://{addr}");
    // Links as clients reach the server (`--public-url`, e.g. behind a
    // proxy); the simulated agents use the local address.
    let shown = match public_url.trim_end_matches('/') {
        "" => base.clone(),
        url => url.to_owned(),
    };
    println!(
        "printgate demo is running with {} simulated printers.",
        args.printers
    );
    println!();
    println!("  GraphiQL, signed in as the demo user:");
    println!("    {shown}/graphql#token={token}");
    println!();
    println!("  Within a minute the first printer fails: printgate's failure detector");
    println!("  (against a simulated ML service) alerts and pauses it; a little later");
    println!("  the print is cancelled and the next one fails again. Watch it with");
    println!("    subscription {{ printerEvent {{ type class title text }} }}");
    println!();
    println!("  Webhooks: every event, the failure alert too, is posted signed to");
    println!("  {}. Receive and verify them with:", args.webhook_url);
    println!("    printgate webhook-receiver --listen {listen} --secret {secret}");
    println!("  (or the stock standardwebhooks library: docs/integrations.md)");
    println!();
    println!("  The REST paths:");
    println!("    curl -H \"Authorization: Bearer {token}\" {shown}/api/v1/printers/");
    println!();
    println!("  The demo user's token (valid 12 h):");
    println!("    {token}");
    println!();
    println!("Ctrl-C stops it. The database is in {}.", dir.display());

    let sim = SimulateArgs {
        url: base,
        tokens,
        printers: None,
        jwt: None,
        interval: args.interval,
        speed: 3.0,
        duration: None,
        no_snapshots: false,
        late_ts: false,
        garbage: false,
        reconnect_storm: false,
        report: false,
        subscribers: 1,
        // The first printer's print fails a third of the way: the ML
        // simulator sees it, printgate alerts and pauses it.
        fail_after: Some(33.0),
        failing: 1,
        snapshot_every: 1,
    };
    let agents = tokio::spawn(simulate::run(sim));
    let served = server.await;
    agents.abort();
    served??;
    Ok(())
}
