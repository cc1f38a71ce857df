//! The floor: a minimal axum server that answers each path with the
//! pre-rendered bytes of a real printgate response (no auth, no database,
//! no GraphQL). Benchmarks report printgate as a ratio to it.
//!
//! Usage: `floor ADDR PATH=FILE [PATH=FILE ...]`

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or("usage: floor ADDR PATH=FILE ...")?;
    let mut router = Router::new();
    for spec in args {
        let (path, file) = spec.split_once('=').ok_or("PATH=FILE expected")?;
        let body: Arc<[u8]> = std::fs::read(file)?.into();
        router = router.route(
            path,
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body.to_vec()) }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
