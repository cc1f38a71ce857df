//! The command line (subcommands and their arguments) and what each
//! subcommand does. Each subcommand takes only the flags it reads (its
//! `--help` lists those); the server's flag groups are in `config`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{Application, StartupError, shutdown_signal};
use crate::auth::JwtKeys;
use crate::config::{DatabaseArgs, EnvironmentArg, JwtArgs, JwtSecretArg, LogArgs, Settings};
use crate::{database, graphql};

/// printgate: a GraphQL gateway over a fleet of 3D printers.
#[derive(Debug, Parser)]
#[command(
    name = "printgate",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve`'s flags, for `printgate` with no subcommand.
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL (and the REST paths) until stopped.
    Serve(Box<Settings>),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Print a signed JWT for a user, for scripts and trying the API.
    Token(TokenArgs),
    /// Run simulated printer agents against a printgate.
    Simulate(crate::simulate::SimulateArgs),
    /// Start a demo: a server on a fresh database with printers printing.
    Demo(Box<crate::demo::DemoArgs>),
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
    #[command(flatten)]
    pub secret: JwtSecretArg,
    /// The SQLite database whose development secret signs the token (when
    /// no `--jwt-secret` is given).
    #[arg(long, env = "PRINTGATE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    #[command(flatten)]
    pub env: EnvironmentArg,
}

/// Runs the command line's subcommand (`serve` when none is given).
pub async fn run(cli: Cli) -> Result<(), StartupError> {
    match cli.command {
        None => serve(&cli.settings).await?,
        Some(Command::Serve(settings)) => serve(&settings).await?,
        Some(Command::Migrate(args)) => {
            let db = database::connect(&args.config()).await?;
            database::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Some(Command::Schema) => print!("{}", graphql::sdl().await),
        Some(Command::Token(args)) => {
            let production = args.env.environment == crate::config::Environment::Production;
            let jwt = JwtArgs {
                secret: args.secret,
                ..Default::default()
            };
            let keys = JwtKeys::load(&jwt.config(production, &args.database_url, None))?;
            println!("{}", keys.mint(&args.sub, args.email.as_deref(), args.ttl)?);
        }
        Some(Command::Demo(args)) => crate::demo::run(*args).await?,
        Some(Command::MlSim(args)) => crate::mlsim::run(args).await?,
        Some(Command::WebhookReceiver(args)) => crate::receiver::run(args).await?,
        Some(Command::Simulate(args)) => {
            let counters = crate::simulate::run(args).await?;
            tracing::info!(?counters, "simulation finished");
        }
    }
    Ok(())
}

async fn serve(settings: &Settings) -> Result<(), StartupError> {
    let app = Application::build(settings.config()).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, "printgate is serving GraphQL at http://{addr}/graphql");
    app.run_until(shutdown_signal()).await?;
    Ok(())
}
