//! sea-orm entities for printgate's tables: users, printers and prints, their
//! agents' data, API keys and the webhook outbox.
//!
//! This crate holds the storage shape only. Wire formats (GraphQL types,
//! REST JSON) live in the app; the schema itself is owned by the
//! `migration` crate, which never imports this one.

pub mod api_key;
pub mod g_code_file;
pub mod print;
pub mod print_prediction;
pub mod printer;
pub mod printer_event;
pub mod printer_prediction;
pub mod snapshot;
pub mod user;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_message;

pub mod prelude {
    //! The entities under short names, for `use entity::prelude::*`.
    pub use super::print::Entity as Print;
    pub use super::printer::Entity as Printer;
    pub use super::user::Entity as User;
}
