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

use crate::error::code;

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// The field named by async-graphql's variable coercion error
/// (`Invalid value for argument "input.retractOnPause", expected type ...`):
/// the last segment of the argument path.
fn invalid_variable_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    // `..., unknown field "nonsense" of type ...` names the field itself.
    if let Some((_, unknown)) = rest.split_once("unknown field \"") {
        return unknown.split('"').next().map(str::to_owned);
    }
    let path = &rest[..rest.find('"')?];
    path.rsplit('.').next().map(str::to_owned)
}

fn set_code_if_missing(err: &mut ServerError, value: &str) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", value);
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut resp = next.run(ctx).await;
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
                if let Some(field) = invalid_variable_field(&e.message) {
                    // A variable of the wrong type is the caller's input
                    // being wrong, not the document: name the field.
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
        let m = r#"Invalid value for argument "input.retractOnPause", expected type "Float""#;
        assert_eq!(invalid_variable_field(m).as_deref(), Some("retractOnPause"));
        assert_eq!(
            invalid_variable_field(r#"Invalid value for argument "id", expected type "ID""#)
                .as_deref(),
            Some("id")
        );
        let unknown = r#"Invalid value for argument "input", unknown field "nonsense" of type "UpdatePrinterInput""#;
        assert_eq!(invalid_variable_field(unknown).as_deref(), Some("nonsense"));
        assert_eq!(invalid_variable_field("Unknown field"), None);
    }
}
