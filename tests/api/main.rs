//! Black-box tests of printgate: the real app on port 0 with a fresh
//! database per test, plus schema-level tests that count SQL statements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod api_keys;
mod architecture;
mod auth;
mod cluster;
mod detection;
mod fleet;
mod helpers;
mod history;
mod isolation;
mod jwks;
mod limits;
mod migrations;
mod operations;
mod printers;
mod protocol;
mod rendered;
mod rest;
mod schema_file;
mod security;
mod statements;
mod webhooks;
