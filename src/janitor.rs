//! Background upkeep, off the request path: the instance heartbeat and
//! the sweep that shows printers of dead instances offline (every
//! [`PRESENCE_EVERY`]), and pruning what agents left and finished webhook
//! deliveries past the retention (every [`PRUNE_EVERY`]). Each pass is idempotent, so a restart loses
//! nothing; a failed pass is logged and tried again next time.

use std::time::Duration;

use crate::service::Service;

pub const PRESENCE_EVERY: Duration = Duration::from_secs(10);
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs until `stop` flips to true.
pub async fn run(
    service: Service,
    clustered: bool,
    retention: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut presence = tokio::time::interval(PRESENCE_EVERY);
    // The first pruning waits a minute: start-up has enough to do.
    let mut prune = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        PRUNE_EVERY,
    );
    loop {
        tokio::select! {
            () = crate::state::going_away(&mut stop) => return,
            _ = presence.tick(), if clustered => {
                let pass = async {
                    service.heartbeat().await?;
                    service.sweep_presence(false).await
                };
                match pass.await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(printers = n, "printers of a gone instance shown offline"),
                    Err(e) => e.log(),
                }
            }
            _ = prune.tick() => {
                match service.prune(retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "pruned agent data past the retention"),
                    Err(e) => e.log(),
                }
                match service.prune_webhooks(retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "pruned webhook deliveries past the retention"),
                    Err(e) => e.log(),
                }
            }
        }
    }
}
