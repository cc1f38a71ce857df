//! `printgate webhook-receiver`: a small webhook receiver for demos and
//! trying webhooks out. It verifies each delivery as Standard Webhooks
//! says (the signature over `id.timestamp.body` by the endpoint's secret,
//! a timestamp within five minutes), prints one line per event, and
//! answers 204 (401 to anything that does not verify). Production
//! receivers use the stock `standardwebhooks` library: see
//! docs/integrations.md.

use std::io::Write;

use axum::http::{HeaderMap, StatusCode};
use clap::Args;

use crate::app::{StartupError, shutdown_signal};
use crate::service::webhooks::secret_bytes;

/// Arguments of `printgate webhook-receiver`.
#[derive(Debug, Args)]
pub struct ReceiverArgs {
    /// The endpoint's secret (`whsec_...`), as `createWebhook` returned it.
    #[arg(long, env = "PRINTGATE_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Address to listen on (any path is accepted).
    #[arg(long = "listen", default_value = "127.0.0.1:8788")]
    pub listen: String,
}

/// Most clock difference accepted, in seconds (the spec's five minutes).
const TOLERANCE_SECS: i64 = 300;

/// Whether a delivery verifies against `secret`.
pub fn verify(secret: &[u8], headers: &HeaderMap, body: &str) -> Result<(), &'static str> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sigs)) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    ) else {
        return Err("missing webhook-id, webhook-timestamp or webhook-signature");
    };
    let ts_n: i64 = ts.parse().map_err(|_| "bad webhook-timestamp")?;
    if (chrono::Utc::now().timestamp() - ts_n).abs() > TOLERANCE_SECS {
        return Err("timestamp more than five minutes off");
    }
    let expected = crate::webhooks::sign(secret, id, ts_n, body);
    if sigs.split(' ').any(|s| s == expected) {
        Ok(())
    } else {
        Err("no valid signature")
    }
}

/// Runs the receiver until Ctrl-C.
pub async fn run(args: ReceiverArgs) -> Result<(), StartupError> {
    let secret = secret_bytes(&args.secret);
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let secret = secret.clone();
        async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            let mut out = std::io::stdout().lock();
            match verify(&secret, &headers, &body) {
                Ok(()) => {
                    let event: serde_json::Value =
                        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                    let _ = writeln!(
                        out,
                        "verified {} {id} {}",
                        event["type"].as_str().unwrap_or("?"),
                        event["data"]
                    );
                    let _ = out.flush();
                    StatusCode::NO_CONTENT
                }
                Err(why) => {
                    let _ = writeln!(out, "REJECTED {id}: {why}");
                    let _ = out.flush();
                    StatusCode::UNAUTHORIZED
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let _ = writeln!(
        std::io::stdout(),
        "listening on http://{} for signed webhooks",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
