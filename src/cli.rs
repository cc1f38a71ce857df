//! What each subcommand does.

use crate::app::{Application, StartupError, shutdown_signal};
use crate::auth::JwtKeys;
use crate::config::{Cli, Command};
use crate::{database, graphql};

/// Runs the command line's subcommand (`serve` when none is given).
pub async fn run(cli: Cli) -> Result<(), StartupError> {
    let config = cli.settings.config();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            let addr = app.local_addr()?;
            tracing::info!(%addr, "printgate is serving GraphQL at http://{addr}/graphql");
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let db = database::connect(&config.database).await?;
            database::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Command::Schema => print!("{}", graphql::sdl()),
        Command::Token(args) => {
            let keys = JwtKeys::load(&config.jwt)?;
            println!("{}", keys.mint(&args.sub, args.email.as_deref(), args.ttl)?);
        }
        Command::Demo(args) => crate::demo::run(config.bind, args).await?,
        Command::Simulate(args) => {
            let counters = crate::simulate::run(args).await?;
            tracing::info!(?counters, "simulation finished");
        }
    }
    Ok(())
}
