//! The shape of a REST body, derived from a route's GraphQL document and the
//! schema's own type information (introspection). The same shape turns a
//! GraphQL result into the REST body and describes that body in OpenAPI, so
//! the two cannot drift apart.
//!
//! Two conventions make GraphQL results look like the REST bodies the
//! existing clients know: an object selected only as `{ raw }` becomes that
//! raw JSON value, and a field of GraphQL type `ID` becomes an integer.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::graphql::AppSchema;

/// A GraphQL type reference as introspection reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct TypeRef {
    kind: String,
    name: Option<String>,
    #[serde(rename = "ofType")]
    of_type: Option<Box<TypeRef>>,
}

#[derive(Debug, Deserialize)]
struct FieldDef {
    name: String,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Debug, Deserialize)]
struct EnumValue {
    name: String,
}

#[derive(Debug, Deserialize)]
struct TypeDef {
    name: String,
    fields: Option<Vec<FieldDef>>,
    #[serde(rename = "inputFields")]
    input_fields: Option<Vec<FieldDef>>,
    #[serde(rename = "enumValues")]
    enum_values: Option<Vec<EnumValue>>,
}

/// The schema's types, read once through introspection.
pub struct Types(HashMap<String, TypeDef>);

// Deprecated fields too: a REST body keeps what it has always carried.
const INTROSPECTION: &str = r#"
{ __schema { types { name
  fields(includeDeprecated: true) { name type { ...T } }
  inputFields { name type { ...T } }
  enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"#;

impl Types {
    /// Reads the schema's types by running an introspection query on it.
    pub async fn introspect(schema: &AppSchema) -> Result<Self, String> {
        let resp = schema.execute(INTROSPECTION).await;
        if !resp.errors.is_empty() {
            return Err(format!("introspection failed: {:?}", resp.errors));
        }
        let data = resp.data.into_json().map_err(|e| e.to_string())?;
        let types: Vec<TypeDef> =
            serde_json::from_value(data["__schema"]["types"].clone()).map_err(|e| e.to_string())?;
        Ok(Self(
            types.into_iter().map(|t| (t.name.clone(), t)).collect(),
        ))
    }

    /// The names and types of an input object's fields.
    pub fn input_fields(&self, type_name: &str) -> Vec<(String, TypeRef)> {
        self.0
            .get(type_name)
            .and_then(|t| t.input_fields.as_ref())
            .map(|fs| fs.iter().map(|f| (f.name.clone(), f.ty.clone())).collect())
            .unwrap_or_default()
    }

    /// The values of an enum type.
    pub fn enum_values(&self, type_name: &str) -> Vec<String> {
        self.0
            .get(type_name)
            .and_then(|t| t.enum_values.as_ref())
            .map(|vs| vs.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default()
    }

    fn field_type(&self, parent: &str, field: &str) -> Option<&TypeRef> {
        self.0
            .get(parent)?
            .fields
            .as_ref()?
            .iter()
            .find(|f| f.name == field)
            .map(|f| &f.ty)
    }

    /// The JSON Schema of a value of GraphQL type `ty` (input side).
    pub fn input_schema(&self, ty: &TypeRef) -> Value {
        let (nullable, named) = unwrap_non_null(ty);
        let schema = match named.kind.as_str() {
            "LIST" => {
                let item = named.of_type.as_deref().map(|t| self.input_schema(t));
                json!({"type": "array", "items": item.unwrap_or(json!({}))})
            }
            "ENUM" => json!({"type": "string", "enum": self.enum_values(name_of(named))}),
            _ => scalar_schema(name_of(named)),
        };
        if nullable {
            make_nullable(schema)
        } else {
            schema
        }
    }
}

fn name_of(ty: &TypeRef) -> &str {
    ty.name.as_deref().unwrap_or_default()
}

/// Splits `T!` into (false, T) and `T` into (true, T).
fn unwrap_non_null(ty: &TypeRef) -> (bool, &TypeRef) {
    match (ty.kind.as_str(), ty.of_type.as_deref()) {
        ("NON_NULL", Some(inner)) => (false, inner),
        _ => (true, ty),
    }
}

fn scalar_schema(name: &str) -> Value {
    match name {
        "ID" | "Int" => json!({"type": "integer"}),
        "Float" => json!({"type": "number"}),
        "Boolean" => json!({"type": "boolean"}),
        "DateTime" => json!({"type": "string", "format": "date-time"}),
        "JSON" => json!({"type": "object"}),
        _ => json!({"type": "string"}),
    }
}

/// Adds `null` to a schema's types.
fn make_nullable(mut schema: Value) -> Value {
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema["type"] = json!([t, "null"]);
            if let Some(Value::Array(values)) = schema.get_mut("enum") {
                values.push(Value::Null);
            }
            schema
        }
        _ => json!({"anyOf": [schema, {"type": "null"}]}),
    }
}

/// What a REST body looks like, field by field.
#[derive(Debug, Clone)]
pub enum Shape {
    Scalar {
        name: String,
        enum_values: Option<Vec<String>>,
        nullable: bool,
    },
    Object {
        fields: Vec<(String, Shape)>,
        nullable: bool,
    },
    /// An object selected as `{ raw }`: the body holds the raw value.
    Raw {
        nullable: bool,
    },
    List {
        item: Box<Shape>,
        nullable: bool,
    },
}

impl Shape {
    /// The shape of a route's `result`, from its document.
    pub fn of_result(types: &Types, document: &str) -> Result<Shape, String> {
        let doc = async_graphql::parser::parse_query(document).map_err(|e| e.to_string())?;
        let op = match &doc.operations {
            DocumentOperations::Single(op) => op,
            DocumentOperations::Multiple(ops) if ops.len() == 1 => {
                ops.values().next().ok_or("no operation")?
            }
            DocumentOperations::Multiple(_) => {
                return Err("a route's document must hold exactly one operation".into());
            }
        };
        let root = match op.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => return Err("subscriptions are not REST".into()),
        };
        let fields = walk(types, &doc, root, &op.node.selection_set.node)?;
        fields
            .into_iter()
            .find(|(k, _)| k == "result")
            .map(|(_, s)| s)
            .ok_or_else(|| "a route's root field must be aliased `result`".into())
    }

    /// The response keys of the object this shape describes (through lists).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Shape::Object { fields, .. } => fields.iter().map(|(k, _)| k.as_str()).collect(),
            Shape::List { item, .. } => item.keys(),
            _ => Vec::new(),
        }
    }

    /// Turns a GraphQL result into the REST body.
    pub fn to_rest(&self, value: Value) -> Value {
        match (self, value) {
            (_, Value::Null) => Value::Null,
            (Shape::Scalar { name, .. }, Value::String(s)) if name == "ID" => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(s)),
            (Shape::Raw { .. }, Value::Object(mut o)) => o.remove("raw").unwrap_or(Value::Null),
            (Shape::Object { fields, .. }, Value::Object(mut o)) => {
                let mut out = Map::with_capacity(fields.len());
                for (key, shape) in fields {
                    let v = o.remove(key).unwrap_or(Value::Null);
                    out.insert(key.clone(), shape.to_rest(v));
                }
                Value::Object(out)
            }
            (Shape::List { item, .. }, Value::Array(items)) => {
                Value::Array(items.into_iter().map(|v| item.to_rest(v)).collect())
            }
            (_, v) => v,
        }
    }

    /// The JSON Schema (OpenAPI 3.1) of the REST body.
    pub fn json_schema(&self) -> Value {
        let (schema, nullable) = match self {
            Shape::Scalar {
                name,
                enum_values,
                nullable,
            } => {
                let s = match enum_values {
                    Some(values) => json!({"type": "string", "enum": values}),
                    None => scalar_schema(name),
                };
                (s, *nullable)
            }
            Shape::Raw { nullable } => (json!({"type": "object"}), *nullable),
            Shape::Object { fields, nullable } => {
                let mut props = Map::new();
                for (k, s) in fields {
                    props.insert(k.clone(), s.json_schema());
                }
                let required: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                (
                    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false}),
                    *nullable,
                )
            }
            Shape::List { item, nullable } => (
                json!({"type": "array", "items": item.json_schema()}),
                *nullable,
            ),
        };
        if nullable {
            make_nullable(schema)
        } else {
            schema
        }
    }
}

/// The shapes of a selection set's fields on GraphQL type `parent`, in order,
/// with fragment spreads inlined.
fn walk(
    types: &Types,
    doc: &ExecutableDocument,
    parent: &str,
    set: &SelectionSet,
) -> Result<Vec<(String, Shape)>, String> {
    let mut out = Vec::new();
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let f = &f.node;
                let name = f.name.node.as_str();
                let key = f.alias.as_ref().map_or(name, |a| a.node.as_str());
                let ty = types
                    .field_type(parent, name)
                    .ok_or_else(|| format!("{parent}.{name} is not in the schema"))?;
                out.push((
                    key.to_owned(),
                    shape_of(types, doc, ty, &f.selection_set.node)?,
                ));
            }
            Selection::FragmentSpread(s) => {
                let frag = doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .ok_or_else(|| format!("unknown fragment {}", s.node.fragment_name.node))?;
                out.extend(walk(types, doc, parent, &frag.node.selection_set.node)?);
            }
            Selection::InlineFragment(_) => {
                return Err("inline fragments are not used by REST routes".into());
            }
        }
    }
    Ok(out)
}

fn shape_of(
    types: &Types,
    doc: &ExecutableDocument,
    ty: &TypeRef,
    set: &SelectionSet,
) -> Result<Shape, String> {
    let (nullable, named) = unwrap_non_null(ty);
    if named.kind == "LIST" {
        let inner = named
            .of_type
            .as_deref()
            .ok_or("a list without an item type")?;
        return Ok(Shape::List {
            item: Box::new(shape_of(types, doc, inner, set)?),
            nullable,
        });
    }
    let name = name_of(named);
    match named.kind.as_str() {
        "OBJECT" => {
            let fields = walk(types, doc, name, set)?;
            if fields.len() == 1 && fields[0].0 == "raw" {
                return Ok(Shape::Raw { nullable });
            }
            Ok(Shape::Object { fields, nullable })
        }
        "ENUM" => Ok(Shape::Scalar {
            name: name.to_owned(),
            enum_values: Some(types.enum_values(name)),
            nullable,
        }),
        _ => Ok(Shape::Scalar {
            name: name.to_owned(),
            enum_values: None,
            nullable,
        }),
    }
}
