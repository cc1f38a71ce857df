//! The OpenAPI 3.1 document of the REST routes, generated from the route
//! table and the schema: request bodies from the GraphQL input types,
//! responses from the shapes of the routes' results.

use serde_json::{Map, Value, json};

use super::Compiled;
use super::routes::{ParamKind, Success};
use super::shape::Types;
use crate::error::camel_case;

/// Builds the document.
pub(super) fn document(types: &Types, routes: &[Compiled]) -> Value {
    let mut paths = Map::new();
    for c in routes {
        let r = c.route;
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = operation(types, c);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "printgate REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The printer paths of Obico's REST API, served by printgate by running GraphQL operations. Every path also answers without (or with) its trailing slash.",
        },
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Detail": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}},
                    "required": ["detail"],
                    "additionalProperties": false,
                },
                "Detail429": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}, "errors": {"type": "array"}},
                    "required": ["detail"],
                },
                "FieldErrors": {
                    "description": "The invalid fields (or query parameters), each with its messages.",
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    })
}

fn error(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
    })
}

fn operation(types: &Types, c: &Compiled) -> Value {
    let r = c.route;
    let mut params = Vec::new();
    if r.has_id() {
        params.push(json!({
            "name": "id", "in": "path", "required": true,
            "description": "The printer's id.",
            "schema": {"type": "integer"},
        }));
    }
    for p in r.query {
        let schema = match &p.kind {
            ParamKind::Bool { default } => json!({"type": "boolean", "default": default}),
            ParamKind::Enum { graphql_type } => {
                json!({"type": "string", "enum": types.enum_values(graphql_type)})
            }
        };
        params.push(json!({
            "name": p.name, "in": "query", "required": false,
            "description": p.description, "schema": schema,
        }));
    }
    let mut responses = Map::new();
    let (status, description) = match r.success {
        Success::Created => ("201", "Created."),
        _ => ("200", "Success."),
    };
    let success = if r.success == Success::Empty {
        json!({"description": "Deleted; the body is empty."})
    } else {
        json!({
            "description": description,
            "content": {"application/json": {"schema": c.shape.json_schema()}},
        })
    };
    responses.insert(status.into(), success);
    if c.body.is_some() || !r.query.is_empty() {
        responses.insert(
            "400".into(),
            json!({
                "description": "Invalid fields or parameters (FieldErrors), or a malformed body (Detail).",
                "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/FieldErrors"},
                    {"$ref": "#/components/schemas/Detail"}
                ]}}},
            }),
        );
    }
    responses.insert(
        "401".into(),
        error(
            "Missing, malformed, expired or badly signed token.",
            "Detail",
        ),
    );
    responses.insert(
        "429".into(),
        error(
            "Too many requests from this caller; see the Retry-After header.",
            "Detail429",
        ),
    );
    if r.has_id() {
        responses.insert(
            "404".into(),
            error("No such printer among yours (missing, deleted, another user's, or a non-numeric id).", "Detail"),
        );
    }
    let mut op = json!({
        "operationId": r.operation_id,
        "summary": r.summary,
        "parameters": params,
        "responses": responses,
    });
    if let Some(input) = r.body {
        responses_for_body(&mut op);
        op["requestBody"] = json!({
            "required": r.success == Success::Created,
            "content": {"application/json": {"schema": body_schema(types, input, c)}},
        });
    }
    op
}

fn responses_for_body(op: &mut Value) {
    op["responses"]["413"] = error("The body is larger than 1 MiB.", "Detail");
    op["responses"]["415"] = error("The body is not JSON.", "Detail");
}

/// The JSON body: the input type's fields under their snake_case REST names
/// (read-only fields of the Printer may be sent too, and are ignored).
fn body_schema(types: &Types, input: &str, c: &Compiled) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    let read_only = c.body.as_ref().map(|b| &b.read_only);
    for (name, ty) in types.input_fields(input) {
        let key = c
            .shape
            .keys()
            .into_iter()
            .find(|k| camel_case(k) == name)
            .map_or_else(|| name.clone(), str::to_owned);
        let schema = types.input_schema(&ty);
        let nullable = schema["type"].as_array().is_some() || schema.get("anyOf").is_some();
        if !nullable {
            required.push(key.clone());
        }
        props.insert(key, strip_null(schema));
    }
    for key in c.shape.keys() {
        if read_only.is_some_and(|r| r.contains(key)) {
            props.insert(
                key.to_owned(),
                json!({"description": "Read-only: ignored."}),
            );
        }
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// Writable fields take no null (leave a field out instead).
fn strip_null(mut schema: Value) -> Value {
    if let Some(types) = schema["type"].as_array() {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        schema["type"] = if kept.len() == 1 {
            kept[0].clone()
        } else {
            Value::Array(kept)
        };
    }
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.retain(|v| !v.is_null());
    }
    schema
}
