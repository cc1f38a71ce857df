//! The command line (subcommands and their arguments) and what each
//! subcommand does. The settings shared by every subcommand are in
//! `config`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{Application, StartupError, shutdown_signal};
use crate::auth::JwtKeys;
use crate::config::Settings;
use crate::{database, graphql};

/// printgate: a GraphQL gateway over a fleet of 3D printers.
#[derive(Debug, Parser)]
#[command(name = "printgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL (and the REST paths) until stopped.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Print a signed JWT for a user, for scripts and trying the API.
    Token(TokenArgs),
    /// Run simulated printer agents against a printgate.
    Simulate(crate::simulate::SimulateArgs),
    /// Start a demo: a server on a fresh database with printers printing.
    Demo(crate::demo::DemoArgs),
    /// Run a simulated ML service (for demos and tests: it "sees" only
    /// what `simulate`'s cameras show).
    MlSim(crate::mlsim::MlSimArgs),
    /// Receive webhooks and print each verified event (for demos and
    /// trying webhooks out).
    WebhookReceiver(crate::receiver::ReceiverArgs),
}

/// Arguments of `printgate token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user the token names (its `sub` claim).
    #[arg(long)]
    pub sub: String,
    /// An optional `email` claim.
    #[arg(long)]
    pub email: Option<String>,
    /// How long the token is valid, e.g. `1h`, `30m`, `7days`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

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
        Command::Demo(args) => crate::demo::run(config, args).await?,
        Command::MlSim(args) => crate::mlsim::run(args).await?,
        Command::WebhookReceiver(args) => crate::receiver::run(args).await?,
        Command::Simulate(args) => {
            let counters = crate::simulate::run(args).await?;
            tracing::info!(?counters, "simulation finished");
        }
    }
    Ok(())
}
