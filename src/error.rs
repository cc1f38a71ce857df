//! One error type for the whole app, rendered at each edge.
//!
//! Every refusal a client can meet is an [`AppError`] variant with a stable
//! code. The GraphQL edge renders it as `extensions.code` (see
//! [`AppError::code`]); the REST edge maps those codes back to HTTP statuses.
//! Internal failures never show their cause to clients: the cause goes to the
//! log under an error id, and the client gets only that id.

use async_graphql::ErrorExtensions;

/// The stable error codes clients see in `extensions.code`.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    pub const INTERNAL: &str = "INTERNAL";
    pub const PRINTER_LIMIT_REACHED: &str = "PRINTER_LIMIT_REACHED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const WEBHOOK_LIMIT_REACHED: &str = "WEBHOOK_LIMIT_REACHED";
    pub const API_KEY_LIMIT_REACHED: &str = "API_KEY_LIMIT_REACHED";
}

/// Everything that can go wrong while serving a request.
///
/// Deliberately not `Display`: async-graphql turns any `Display` type into an
/// error with its text and no code, and an internal cause must never reach a
/// client that way. Conversion goes through the `From` impl below.
#[derive(Debug, Clone)]
pub enum AppError {
    /// No credentials, or credentials that do not verify.
    /// HTTP 401; GraphQL `UNAUTHENTICATED`.
    Unauthenticated(String),
    /// The thing does not exist, is deleted, or belongs to someone else
    /// (indistinguishable on purpose). HTTP 404; GraphQL `NOT_FOUND`.
    NotFound,
    /// A field's value breaks a rule. HTTP 400; GraphQL `BAD_USER_INPUT`
    /// with `extensions.field` naming the field (the domain's snake_case name).
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Several fields break their rules: each is reported (GraphQL: one
    /// error per field, each `BAD_USER_INPUT` with `extensions.field`;
    /// REST: one 400 body naming them all).
    Fields(Vec<(&'static str, String)>),
    /// A bound on what a user may keep was reached (e.g. printers per
    /// user). HTTP 403; GraphQL `code` names the bound, `extensions.limit`
    /// gives its value.
    LimitReached {
        code: &'static str,
        message: String,
        limit: u64,
    },
    /// Authenticated, but the credential may not do this (a READ API key
    /// on a mutation; an API key managing keys or webhooks). HTTP 403;
    /// GraphQL `FORBIDDEN`.
    Forbidden(String),
    /// Anything else: a database failure, a bug. HTTP 500; GraphQL
    /// `INTERNAL`, with the message masked.
    Internal(String),
}

impl AppError {
    /// A validation failure on `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Wraps an internal failure; its text is only ever logged.
    pub fn internal(source: impl std::fmt::Display) -> Self {
        Self::Internal(source.to_string())
    }

    /// Logs the error where it is handled without reaching a client (an
    /// agent frame, a background task): internal causes under an error id.
    pub fn log(&self) {
        match self {
            Self::Internal(cause) => {
                log_internal(cause);
            }
            other => {
                tracing::debug!(code = other.code(), message = %other.client_message(), "refused")
            }
        }
    }

    /// The message a client sees (internal causes excluded).
    pub fn client_message(&self) -> String {
        match self {
            Self::Unauthenticated(why) => why.clone(),
            Self::NotFound => "Not found.".into(),
            Self::Invalid { field, message } => format!("{field}: {message}"),
            Self::Fields(all) => all
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join(" "),
            Self::LimitReached { message, .. } => message.clone(),
            Self::Forbidden(why) => why.clone(),
            Self::Internal(_) => "Internal server error.".into(),
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => code::UNAUTHENTICATED,
            Self::NotFound => code::NOT_FOUND,
            Self::Invalid { .. } | Self::Fields(_) => code::BAD_USER_INPUT,
            Self::LimitReached { code, .. } => code,
            Self::Forbidden(_) => code::FORBIDDEN,
            Self::Internal(_) => code::INTERNAL,
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::internal(e)
    }
}

/// The extension that carries every field of an [`AppError::Fields`] until
/// the schema splits it into one error per field.
pub const FIELDS_EXTENSION: &str = "printgateFields";

/// Collects field errors, so every invalid field of an input is reported
/// at once; any other error wins.
#[derive(Debug, Default)]
pub struct Checks {
    fields: Vec<(&'static str, String)>,
    other: Option<AppError>,
}

impl Checks {
    /// The value, or `None` after noting why it is refused.
    pub fn check<T>(&mut self, result: Result<T, AppError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(AppError::Invalid { field, message }) => {
                self.fields.push((field, message));
                None
            }
            Err(AppError::Fields(all)) => {
                self.fields.extend(all);
                None
            }
            Err(other) => {
                self.other.get_or_insert(other);
                None
            }
        }
    }

    /// An optional value checked by `rule` when given (`None` when not
    /// given, or after noting why it is refused).
    pub fn optional<T, U>(
        &mut self,
        value: Option<T>,
        rule: impl FnOnce(T) -> Result<U, AppError>,
    ) -> Option<U> {
        value.and_then(|v| self.check(rule(v)))
    }

    /// Refuses a field outright.
    pub fn refuse(&mut self, field: &'static str, message: impl Into<String>) {
        self.fields.push((field, message.into()));
    }

    /// Ok when nothing was refused; else every refusal at once.
    pub fn finish(self) -> Result<(), AppError> {
        if let Some(other) = self.other {
            return Err(other);
        }
        let mut fields = self.fields;
        match fields.len() {
            0 => Ok(()),
            1 => {
                let (field, message) = fields.remove(0);
                Err(AppError::Invalid { field, message })
            }
            _ => Err(AppError::Fields(fields)),
        }
    }
}

/// Logs an internal failure under a fresh error id and returns the id, so the
/// client's message and the log line can be matched.
pub fn log_internal(cause: &str) -> String {
    let error_id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error_id = %error_id, cause = %cause, "internal error");
    error_id
}

/// Turns a snake_case domain field name into the camelCase GraphQL name.
pub fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Internal(cause) => {
                let error_id = log_internal(&cause);
                async_graphql::Error::new(format!("Internal server error (error id {error_id})."))
                    .extend_with(|_, ext| {
                        ext.set("code", code::INTERNAL);
                        ext.set("errorId", error_id.clone());
                    })
            }
            // The message is the reason only: a form shows it beside the
            // field `extensions.field` names.
            AppError::Invalid { field, message } => {
                async_graphql::Error::new(message).extend_with(|_, ext| {
                    ext.set("code", code::BAD_USER_INPUT);
                    ext.set("field", camel_case(field));
                })
            }
            // One error here; the schema's error extension (`codes.rs`)
            // makes it one error per field.
            AppError::Fields(all) => {
                let first = all.first().cloned().unwrap_or(("input", String::new()));
                async_graphql::Error::new(first.1).extend_with(|_, ext| {
                    ext.set("code", code::BAD_USER_INPUT);
                    ext.set("field", camel_case(first.0));
                    let list: Vec<async_graphql::Value> = all
                        .iter()
                        .map(|(f, m)| {
                            let mut o = async_graphql::indexmap::IndexMap::new();
                            o.insert(
                                async_graphql::Name::new("field"),
                                async_graphql::Value::from(camel_case(f)),
                            );
                            o.insert(
                                async_graphql::Name::new("message"),
                                async_graphql::Value::from(m.as_str()),
                            );
                            async_graphql::Value::Object(o)
                        })
                        .collect();
                    ext.set(FIELDS_EXTENSION, async_graphql::Value::List(list));
                })
            }
            AppError::LimitReached {
                code,
                message,
                limit,
            } => async_graphql::Error::new(message).extend_with(|_, ext| {
                ext.set("code", code);
                ext.set("limit", limit);
            }),
            other => {
                let code = other.code();
                async_graphql::Error::new(other.client_message())
                    .extend_with(|_, ext| ext.set("code", code))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_turns_domain_names_into_graphql_names() {
        assert_eq!(camel_case("lift_z_on_pause"), "liftZOnPause");
        assert_eq!(camel_case("name"), "name");
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let e: async_graphql::Error =
            AppError::internal("UNIQUE constraint failed: printers.auth_token").into();
        assert!(!e.message.contains("UNIQUE"), "{}", e.message);
        assert!(e.message.contains("error id"));
    }
}
