//! Gives every GraphQL error an `extensions.code`.
//!
//! Resolver errors carry their code already (see `crate::error`). Errors that
//! async-graphql raises itself carry none, so this extension names them with
//! Apollo's codes: a document that does not parse is GRAPHQL_PARSE_FAILED,
//! one that does not validate (or names an unknown operation) is
//! GRAPHQL_VALIDATION_FAILED, and an argument that fails to coerce while
//! executing is BAD_USER_INPUT.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use super::limits::{Limits, refusal};
use crate::error::code;

pub struct ErrorCodes(pub Limits);

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension(self.0))
    }
}

struct ErrorCodesExtension(Limits);

fn set_code_if_missing(err: &mut ServerError, value: &str) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", value);
    }
}

/// A variable that failed to coerce, as async-graphql words it
/// (`Invalid value for argument "input.retractOnPause", expected type "Float"`),
/// turned into the field it names and a plain reason.
fn invalid_variable(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    let (path, reason) = rest.split_once("\", ")?;
    let quoted = |s: &str| s.split('"').nth(1).map(str::to_owned);
    if let Some(after) = reason.strip_prefix("unknown field ") {
        return Some((quoted(after)?, "Unknown field.".into()));
    }
    if reason.starts_with("field ") && reason.ends_with("is required but not provided") {
        return Some((quoted(reason)?, "This field is required.".into()));
    }
    let field = path.rsplit('.').next()?.to_owned();
    let why = if let Some(after) = reason.strip_prefix("enumeration type ") {
        let value = after.rsplit('"').nth(1).unwrap_or_default();
        format!("\"{value}\" is not a valid choice.")
    } else if let Some(ty) = reason.strip_prefix("expected type ").and_then(quoted) {
        match ty.trim_end_matches('!') {
            "Float" => "A valid number is required.".into(),
            "Int" => "A valid integer is required.".into(),
            "Boolean" => "Must be a valid boolean.".into(),
            "String" | "ID" => "Not a valid string.".into(),
            other => format!("Expected a value of type {other}."),
        }
    } else {
        reason.to_owned()
    };
    Some((field, why))
}

/// An error carrying several invalid fields, as one error per field (the
/// same path and locations, each with its `field` and message).
fn split_fields(mut err: ServerError) -> Vec<ServerError> {
    let list = err.extensions.as_mut().and_then(|ext| {
        let list = ext.get(crate::error::FIELDS_EXTENSION).cloned();
        ext.unset(crate::error::FIELDS_EXTENSION);
        list
    });
    let Some(async_graphql::Value::List(fields)) = list else {
        return vec![err];
    };
    fields
        .into_iter()
        .filter_map(|f| {
            let async_graphql::Value::Object(o) = f else {
                return None;
            };
            let text = |k: &str| match o.get(k) {
                Some(async_graphql::Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            let mut one = err.clone();
            one.message = text("message")?;
            one.extensions
                .get_or_insert_with(Default::default)
                .set("field", text("field")?);
            Some(one)
        })
        .collect()
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut resp = next.run(ctx).await;
        // One error per invalid field (see `AppError::Fields`).
        resp.errors = std::mem::take(&mut resp.errors)
            .into_iter()
            .flat_map(split_fields)
            .collect();
        for err in &mut resp.errors {
            // No path: raised before execution started (e.g. unknown
            // operation name); with a path: an argument that did not coerce.
            let fallback = if err.path.is_empty() {
                code::GRAPHQL_VALIDATION_FAILED
            } else {
                code::BAD_USER_INPUT
            };
            set_code_if_missing(err, fallback);
        }
        // The last touch of every response, so here rather than in an
        // extension of its own (each one costs every field).
        super::sdl::describe_schema(&mut resp);
        resp
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut e| {
            set_code_if_missing(&mut e, code::GRAPHQL_PARSE_FAILED);
            e
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errs| {
            for e in &mut errs {
                // async-graphql's own depth and complexity refusals.
                let limit = match e.message.as_str() {
                    "Query is nested too deep." => Some((
                        "QUERY_TOO_DEEP",
                        "The query is nested too deep",
                        self.0.depth,
                    )),
                    "Query is too complex." => Some((
                        "QUERY_TOO_COMPLEX",
                        "The query is too complex",
                        self.0.complexity,
                    )),
                    _ => None,
                };
                if let Some((code, what, value)) = limit {
                    *e = refusal(code, what, value);
                } else if let Some((field, why)) = invalid_variable(&e.message) {
                    // A value of the wrong type is the caller's input being
                    // wrong, not the document: name the field, as the
                    // service's own validation errors do.
                    e.message = why;
                    let ext = e.extensions.get_or_insert_with(Default::default);
                    ext.set("code", code::BAD_USER_INPUT);
                    ext.set("field", field);
                } else {
                    set_code_if_missing(e, code::GRAPHQL_VALIDATION_FAILED);
                }
            }
            errs
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_coercion_errors_name_their_field() {
        let cases = [
            (
                r#"Invalid value for argument "input.retractOnPause", expected type "Float""#,
                ("retractOnPause", "A valid number is required."),
            ),
            (
                r#"Invalid value for argument "id", expected type "ID!""#,
                ("id", "Not a valid string."),
            ),
            (
                r#"Invalid value for argument "input", unknown field "nonsense" of type "UpdatePrinterInput""#,
                ("nonsense", "Unknown field."),
            ),
            (
                r#"Invalid value for argument "input", field "name" of type "String!" is required but not provided"#,
                ("name", "This field is required."),
            ),
            (
                r#"Invalid value for argument "alertOverwrite", enumeration type "AlertOverwrite" does not contain the value "MAYBE""#,
                ("alertOverwrite", "\"MAYBE\" is not a valid choice."),
            ),
        ];
        for (message, (field, why)) in cases {
            let got = invalid_variable(message);
            assert_eq!(got, Some((field.to_owned(), why.to_owned())), "{message}");
        }
        assert_eq!(invalid_variable("Unknown field"), None);
    }
}
