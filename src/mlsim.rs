//! `printgate ml-sim`: a stand-in for Obico's ML service, for demos and
//! tests only (it knows nothing of real failures). It speaks the §1
//! contract of detection.md: `GET /p/?img=<url>` fetches the image and
//! answers `{"detections": [[label, confidence, [xc, yc, w, h]], ...]}`,
//! `GET /hc/` answers `ok`. What it "sees" is what `printgate simulate`'s
//! camera shows: a snapshot carrying the simulator's failure mark gets two
//! confident spaghetti detections, any other image none.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use serde_json::json;
use tokio::net::TcpListener;

use crate::simulate::FAILURE_MARK;

/// Arguments of `printgate ml-sim`.
#[derive(Debug, Clone, Args)]
pub struct MlSimArgs {
    /// Where to listen (Obico's ML service listens on port 3333).
    #[arg(long = "ml-bind", default_value = "127.0.0.1:3333")]
    pub bind: String,
    /// Require `Authorization: Bearer <token>`, as `ml_api` does with
    /// `ML_API_TOKEN`.
    #[arg(long = "ml-token")]
    pub token: Option<String>,
}

struct Sim {
    http: reqwest::Client,
    token: Option<String>,
}

/// Binds and returns the listener and the router (the demo runs it in
/// process on port 0).
pub async fn bind(args: &MlSimArgs) -> Result<(TcpListener, Router), String> {
    let listener = TcpListener::bind(&args.bind)
        .await
        .map_err(|e| format!("{}: {e}", args.bind))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let sim = Arc::new(Sim {
        http,
        token: args.token.clone(),
    });
    let router = Router::new()
        .route("/p/", get(predict))
        .route("/p", get(predict))
        .route("/hc/", get(|| async { "ok" }))
        .with_state(sim);
    Ok((listener, router))
}

/// Serves until the process stops.
pub async fn run(args: MlSimArgs) -> Result<(), String> {
    let (listener, router) = bind(&args).await?;
    tracing::info!(bind = %args.bind, "ml-sim (a simulated ML service) is listening");
    axum::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

async fn predict(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(want) = &sim.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_token);
        if given != Some(want.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let Some(img) = q.get("img") else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"detail": "img is required"})),
        )
            .into_response();
    };
    let image = match sim.http.get(img).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.ok(),
        _ => None,
    };
    let Some(image) = image else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"detections": [], "message": "Failed to get image"})),
        )
            .into_response();
    };
    let failing = image.windows(FAILURE_MARK.len()).any(|w| w == FAILURE_MARK);
    let detections = if failing {
        json!([
            ["failure", 0.81, [212.0, 140.0, 60.0, 48.0]],
            ["failure", 0.69, [98.0, 171.0, 40.0, 36.0]]
        ])
    } else {
        json!([])
    };
    axum::Json(json!({"detections": detections})).into_response()
}
