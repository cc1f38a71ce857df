//! The agent HTTP endpoints (`Authorization: Token <auth_token>`): token
//! check, snapshots, G-code files, printer events; and the signed snapshot
//! URLs browsers load.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use entity::printer;
use serde_json::json;

use super::{MAX_FORM_BYTES, MAX_PIC_BYTES};
use crate::error::AppError;
use crate::ratelimit::{ClientAddr, charge_agent};
use crate::responses::{detail, field_error};
use crate::service::{GCodeFile, PrinterEvent};
use crate::state::AppState;

/// The printer whose agent token the request carries, or a 401 (or a 429
/// once the printer, or the address failing to authenticate, is over its
/// rate).
async fn agent(
    state: &AppState,
    headers: &HeaderMap,
    addr: Option<&ClientAddr>,
) -> Result<printer::Model, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"))
        .map(|(_, t)| t.trim());
    let found = match token {
        Some(t) => state.gateway.service().agent_printer(t).await,
        None => Ok(None),
    };
    let id = match &found {
        Ok(Some(p)) => Some(p.id),
        _ => None,
    };
    if found.is_ok() {
        charge_agent(&state.limiter, id, addr)?;
    }
    match found {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(detail(
            StatusCode::UNAUTHORIZED,
            "Invalid or inactive token.",
        )),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: AppError) -> Response {
    e.log();
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
}

/// `GET /api/v1/octo/printer/`: the agent checks its token here first.
pub async fn printer(
    State(state): State<AppState>,
    addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let p = match agent(&state, &headers, addr.as_ref().map(|a| &a.0)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    Json(json!({
        "user": {"is_pro": true},
        "printer": {
            "is_pro": true,
            "id": p.id,
            "name": p.name,
            "action_on_failure": p.action_on_failure,
            "watching_enabled": p.watching_enabled,
            "retract_on_pause": p.retract_on_pause,
            "lift_z_on_pause": p.lift_z_on_pause,
            "tools_off_on_pause": p.tools_off_on_pause,
            "bed_off_on_pause": p.bed_off_on_pause,
        },
    }))
    .into_response()
}

/// A form's text fields and files, from multipart or urlencoded bodies.
#[derive(Default)]
struct Form {
    fields: HashMap<String, String>,
    files: HashMap<String, Bytes>,
}

/// A multipart failure: 413 when the body is over the cap, else 400.
fn multipart_error(e: &axum::extract::multipart::MultipartError) -> Response {
    form_error(e.status(), e)
}

/// A form that could not be read: 413 when it was over the cap, else 400.
fn form_error(status: StatusCode, e: &dyn std::fmt::Display) -> Response {
    let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    detail(status, &format!("Malformed form: {e}"))
}

/// Reads a form. Text fields may total at most [`MAX_FORM_BYTES`] (413
/// past it); files are kept only when `keep_files`, else read and dropped.
async fn read_form(state: &AppState, req: Request, keep_files: bool) -> Result<Form, Response> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut form = Form::default();
    let mut text_bytes = 0;
    if is_multipart {
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|e| detail(StatusCode::BAD_REQUEST, &format!("Malformed form: {e}")))?;
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(multipart_error(&e)),
            };
            let name = field.name().unwrap_or_default().to_owned();
            let is_file = field.file_name().is_some();
            if is_file && !keep_files {
                let mut field = field;
                while field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(&e))?
                    .is_some()
                {}
                continue;
            }
            let data = field.bytes().await.map_err(|e| multipart_error(&e))?;
            if is_file {
                form.files.insert(name, data);
            } else {
                text_bytes += data.len();
                if text_bytes > MAX_FORM_BYTES {
                    return Err(text_too_large());
                }
                form.fields
                    .insert(name, String::from_utf8_lossy(&data).into_owned());
            }
        }
    } else {
        let axum::Form(fields) = axum::Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|e| form_error(e.status(), &e))?;
        if fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_FORM_BYTES {
            return Err(text_too_large());
        }
        form.fields = fields;
    }
    Ok(form)
}

fn text_too_large() -> Response {
    detail(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The form's text fields are larger than 64 KiB.",
    )
}

/// The printer whose agent sent the request, and the request's form.
async fn agent_form(
    state: &AppState,
    req: Request,
    keep_files: bool,
) -> Result<(printer::Model, Form), Response> {
    let addr = req.extensions().get::<ClientAddr>().copied();
    let p = agent(state, req.headers(), addr.as_ref()).await?;
    let form = read_form(state, req, keep_files).await?;
    Ok((p, form))
}

/// The image type of some bytes, by their magic numbers.
fn image_type(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

fn truthy(v: Option<&String>, default: bool) -> bool {
    v.map_or(default, |s| {
        !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        )
    })
}

/// `POST /api/v1/octo/pic/`: the latest snapshot becomes the printer's pic.
pub async fn pic(State(state): State<AppState>, req: Request) -> Response {
    let (p, form) = match agent_form(&state, req, true).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(data) = form.files.get("pic") else {
        return detail(StatusCode::BAD_REQUEST, "The pic field is required.");
    };
    if data.len() > MAX_PIC_BYTES {
        return detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The picture is larger than 5 MiB.",
        );
    }
    let Some(content_type) = image_type(data) else {
        return detail(
            StatusCode::BAD_REQUEST,
            "The pic is not a JPEG or PNG image.",
        );
    };
    // Snapshots of other cameras are accepted and discarded.
    if !truthy(form.fields.get("is_primary_camera"), true) {
        return Json(json!({"result": "ok"})).into_response();
    }
    match state
        .gateway
        .service()
        .store_snapshot(p.id, content_type, data.to_vec())
        .await
    {
        Ok(printer) => {
            // Judged off the request path: the upload waits for the §2
            // checks only, never for the ML service.
            if let Some(detector) = &state.detector {
                detector
                    .offer(printer, truthy(form.fields.get("viewing_boost"), false))
                    .await;
            }
            Json(json!({"result": "ok"})).into_response()
        }
        Err(e) => internal(e),
    }
}

/// `POST /api/v1/octo/g_code_files/`: a stable id for the printed file.
pub async fn g_code_file(State(state): State<AppState>, req: Request) -> Response {
    let (p, form) = match agent_form(&state, req, false).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let field = |k: &str| form.fields.get(k).cloned();
    let Some(filename) = field("filename").filter(|f| !f.is_empty()) else {
        return field_error("filename", "This field is required.");
    };
    let num_bytes = match field("num_bytes") {
        None => None,
        Some(n) => match n.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return field_error("num_bytes", "A valid integer is required."),
        },
    };
    let file = GCodeFile {
        safe_filename: field("safe_filename").unwrap_or_else(|| filename.clone()),
        filename,
        num_bytes,
        agent_signature: field("agent_signature").unwrap_or_default(),
        url: field("url"),
    };
    match state.gateway.service().g_code_file(p.id, file).await {
        Ok(id) => (StatusCode::OK, Json(json!({"id": id}))).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /api/v1/octo/printer_events/`: kept as the printer's events.
pub async fn printer_event(State(state): State<AppState>, req: Request) -> Response {
    let (p, form) = match agent_form(&state, req, false).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let field = |k: &str| form.fields.get(k).cloned();
    let Some(event_type) = field("event_type").filter(|t| !t.is_empty()) else {
        return field_error("event_type", "This field is required.");
    };
    let event = PrinterEvent {
        event_type,
        event_class: field("event_class"),
        event_title: field("event_title"),
        event_text: field("event_text"),
        info_url: field("info_url"),
    };
    match state.gateway.service().printer_event(p.id, event).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({"result": "ok"}))).into_response(),
        Err(e) => internal(e),
    }
}

/// `GET /snapshots/{id}.jpg?v=&exp=&sig=`: the image, for whoever holds a
/// valid, unexpired URL.
pub async fn snapshot(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let forbidden = || {
        detail(
            StatusCode::FORBIDDEN,
            "This snapshot link is invalid or has expired.",
        )
    };
    let Some(id) = file
        .strip_suffix(".jpg")
        .and_then(|i| i.parse::<i32>().ok())
    else {
        return forbidden();
    };
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(version), Some(exp), Some(sig)) = (num("v"), num("exp"), q.get("sig")) else {
        return forbidden();
    };
    if !state.urls.verify(id, version, exp, sig, Utc::now()) {
        return forbidden();
    }
    match state.gateway.service().snapshot(id).await {
        Ok(Some(s)) if s.taken_at.timestamp_millis() == version => (
            [
                (header::CONTENT_TYPE, s.content_type.clone()),
                (header::CACHE_CONTROL, "private, max-age=300".to_owned()),
            ],
            s.data,
        )
            .into_response(),
        // A newer snapshot replaced this one: the link names a picture that
        // is gone.
        Ok(_) => detail(StatusCode::NOT_FOUND, "Not found."),
        Err(e) => internal(e),
    }
}
