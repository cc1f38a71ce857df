//! Per-request GraphQL data: who is asking, resolved lazily to a user, and
//! the request's DataLoaders.

use std::sync::Arc;

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;
use tokio::sync::OnceCell;

use super::loaders::{PrintLoader, PrinterLoader};
use crate::auth::Identity;
use crate::error::AppError;
use crate::service::{Service, Viewer};

/// What a request knows about its sender.
pub struct RequestContext {
    identity: Identity,
    service: Service,
    viewer: OnceCell<Viewer>,
    /// Printers whose agent token this request may show: ones it created
    /// (the token is shown with the new printer, once).
    revealed: std::sync::Mutex<Vec<i32>>,
}

/// Marks a request whose answers show every printer's agent token: the
/// REST paths', whose contract (the seed) has `auth_token` in each
/// printer body. GraphQL clients read tokens only on purpose
/// (`printerCredentials`, `regeneratePrinterToken`, `createPrinter`).
pub struct ShowCredentials;

impl RequestContext {
    pub fn new(identity: Identity, service: Service) -> Arc<Self> {
        Arc::new(Self {
            identity,
            service,
            viewer: OnceCell::new(),
            revealed: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The user this request acts for, provisioned on first sight; looked up
    /// at most once per request, and only when a resolver needs it.
    pub async fn viewer(&self) -> Result<&Viewer, AppError> {
        let claims = match &self.identity {
            Identity::Verified(c) => c,
            Identity::Key(k) => {
                return self
                    .viewer
                    .get_or_try_init(|| self.service.key_viewer(k))
                    .await;
            }
            Identity::Anonymous => {
                return Err(AppError::Unauthenticated(
                    "Authentication credentials were not provided.".into(),
                ));
            }
            Identity::Rejected(why) => return Err(AppError::Unauthenticated(why.clone())),
        };
        self.viewer
            .get_or_try_init(|| self.service.viewer(&claims.sub, claims.email.as_deref()))
            .await
    }

    /// The viewer if one was already resolved (loaders run after it was).
    pub fn resolved_viewer(&self) -> Option<&Viewer> {
        self.viewer.get()
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Lets this request's answer show printer `id`'s agent token.
    pub fn reveal(&self, id: i32) {
        if let Ok(mut r) = self.revealed.lock() {
            r.push(id);
        }
    }

    pub fn revealed(&self, id: i32) -> bool {
        self.revealed.lock().is_ok_and(|r| r.contains(&id))
    }
}

/// Puts the per-request data every resolver relies on (the context and its
/// loaders) into `data`: a request's, or a websocket connection's.
pub fn request_data(ctx: &Arc<RequestContext>, data: &mut async_graphql::Data) {
    data.insert(ctx.clone());
    data.insert(DataLoader::new(PrintLoader::new(ctx.clone()), tokio::spawn));
    data.insert(DataLoader::new(
        PrinterLoader::new(ctx.clone()),
        tokio::spawn,
    ));
}

/// Attaches the per-request data to a request.
pub fn with_request_data(
    mut request: async_graphql::Request,
    ctx: &Arc<RequestContext>,
) -> async_graphql::Request {
    request_data(ctx, &mut request.data);
    request
}

/// The request context of a resolver.
pub fn request<'a>(ctx: &'a Context<'_>) -> Result<&'a Arc<RequestContext>, AppError> {
    ctx.data::<Arc<RequestContext>>()
        .map_err(|_| AppError::internal("request context missing"))
}

/// The viewer of a resolver's request (UNAUTHENTICATED without one).
pub async fn viewer<'a>(ctx: &'a Context<'_>) -> Result<&'a Viewer, AppError> {
    request(ctx)?.viewer().await
}

/// The viewer of a mutation: one whose credential may write (FORBIDDEN
/// for a READ API key). Every mutation resolver starts here.
pub async fn writer<'a>(ctx: &'a Context<'_>) -> Result<&'a Viewer, AppError> {
    let viewer = viewer(ctx).await?;
    viewer.may_write()?;
    Ok(viewer)
}
