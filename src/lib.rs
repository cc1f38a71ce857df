//! printgate: a GraphQL gateway over the printer domain of Obico.
//!
//! Data flows one way: an edge (GraphQL over HTTP, the REST paths) runs operations through
//! the [`gateway::Gateway`], whose resolvers call the [`service`] layer,
//! which alone reads and writes the database. See docs/ARCHITECTURE.md.

pub mod agent;
pub mod app;
pub mod auth;
pub mod bounded;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod database;
pub mod demo;
pub mod detection;
pub mod error;
pub mod events;
pub mod gateway;
pub mod graphql;
pub mod janitor;
pub mod metrics;
pub mod mlsim;
pub mod ratelimit;
pub mod readcache;
pub mod receiver;
pub mod responses;
pub mod rest;
pub mod server;
pub mod service;
pub mod simulate;
pub mod state;
pub mod telemetry;
pub mod urls;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
pub use state::AppState;
