//! The printer-agent edge: Obico's agent protocol (the `/ws/dev/`
//! websocket and the `/api/v1/octo/...` HTTP endpoints), spoken so existing
//! OctoPrint-Obico and moonraker-obico agents work unchanged. Frames are
//! parsed and checked here; what they change is decided in the service.

pub mod frames;
pub mod http;
pub mod hub;
pub mod socket;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

/// Largest snapshot accepted.
pub const MAX_PIC_BYTES: usize = 5 * 1024 * 1024;
/// Largest printer-event or G-code-file form accepted, text fields only
/// (they carry a few short fields; Obico's agents send well under 4 KiB).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The agent routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/dev/", get(socket::upgrade))
        .route("/ws/dev", get(socket::upgrade))
        .route("/api/v1/octo/printer/", get(http::printer))
        .route("/api/v1/octo/printer", get(http::printer))
        .route(
            "/api/v1/octo/pic/",
            post(http::pic).layer(DefaultBodyLimit::max(MAX_PIC_BYTES + 64 * 1024)),
        )
        .route(
            "/api/v1/octo/pic",
            post(http::pic).layer(DefaultBodyLimit::max(MAX_PIC_BYTES + 64 * 1024)),
        )
        .route(
            "/api/v1/octo/g_code_files/",
            post(http::g_code_file).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .route(
            "/api/v1/octo/g_code_files",
            post(http::g_code_file).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        // An event may carry a snapshot, which is read and dropped: the
        // body may be as large as a picture, its text fields not.
        .route(
            "/api/v1/octo/printer_events/",
            post(http::printer_event).layer(DefaultBodyLimit::max(MAX_PIC_BYTES + MAX_FORM_BYTES)),
        )
        .route(
            "/api/v1/octo/printer_events",
            post(http::printer_event).layer(DefaultBodyLimit::max(MAX_PIC_BYTES + MAX_FORM_BYTES)),
        )
        .route("/snapshots/{file}", get(http::snapshot))
}
