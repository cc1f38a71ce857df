//! GraphiQL, served by printgate itself: its scripts and styles are embedded
//! in the binary (copied from the npm registry by
//! `scripts/update-graphiql.sh`, versions locked in `playground/`), so the
//! page works on an air-gapped network and under a strict
//! Content-Security-Policy (no inline scripts, nothing from elsewhere).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page's policy: everything from printgate itself. Styles may be
/// inline because GraphiQL's editor sets style attributes.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("playground/index.html");

/// (name, content type, bytes) of every asset the page loads.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("playground/assets/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("playground/assets/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("playground/assets/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("playground/assets/react-dom.production.min.js"),
    ),
    (
        "graphql-ws.min.js",
        "text/javascript",
        include_bytes!("playground/assets/graphql-ws.min.js"),
    ),
    (
        "playground.js",
        "text/javascript",
        include_bytes!("playground/playground.js"),
    ),
    (
        "playground.css",
        "text/css",
        include_bytes!("playground/playground.css"),
    ),
];

/// The GraphiQL page, with its policy.
pub fn page() -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `GET /graphiql/{file}`: an embedded asset.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        for src in INDEX
            .split("src=\"")
            .skip(1)
            .chain(INDEX.split("href=\"").skip(1))
        {
            let path = src.split('"').next().unwrap_or_default();
            let name = path.strip_prefix("/graphiql/").unwrap_or(path);
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "{path} is not embedded"
            );
        }
        assert!(
            !INDEX.contains("<script>"),
            "no inline scripts under the CSP"
        );
    }
}
