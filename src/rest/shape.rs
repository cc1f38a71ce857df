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

/// A GraphQL result serialized as its REST body: an object in the shape's
/// field order (a field missing from the result is null), an object
/// selected as `{ raw }` as its raw value, an `ID` as an integer.
pub struct Rest<'a> {
    shape: &'a Shape,
    value: &'a async_graphql::Value,
}

impl serde::Serialize for Rest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use async_graphql::Value as Gql;
        use serde::ser::{SerializeMap, SerializeSeq};
        match (self.shape, self.value) {
            (_, Gql::Null) => serializer.serialize_none(),
            // A printer of a list, kept in this shape (rendered::Splice).
            (_, Gql::Binary(json)) => crate::graphql::rendered::write_json(json, serializer),
            (Shape::Scalar { name, .. }, Gql::String(s)) if name == "ID" => {
                match s.parse::<i64>() {
                    Ok(n) => serializer.serialize_i64(n),
                    Err(_) => serializer.serialize_str(s),
                }
            }
            (Shape::Raw { .. }, Gql::Object(o)) => match o.get("raw") {
                Some(raw) => raw.serialize(serializer),
                None => serializer.serialize_none(),
            },
            (Shape::Object { fields, .. }, Gql::Object(o)) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, shape) in fields {
                    let value = o.get(key.as_str()).unwrap_or(&Gql::Null);
                    map.serialize_entry(key, &shape.rest(value))?;
                }
                map.end()
            }
            (Shape::List { item, .. }, Gql::List(items)) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&item.rest(v))?;
                }
                seq.end()
            }
            (_, v) => v.serialize(serializer),
        }
    }
}

impl Rest<'_> {
    /// The body as bytes: a list's spliced printers (kept in this shape:
    /// `rendered::Splice`) copied verbatim, not checked again as
    /// [`serde::Serialize`] has to.
    pub fn to_vec(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        use async_graphql::Value as Gql;
        match (self.shape, self.value) {
            (_, Gql::Binary(json)) => out.extend_from_slice(json),
            (Shape::List { item, .. }, Gql::List(items)) => {
                crate::graphql::rendered::write_array(out, items, |out, v| item.rest(v).write(out))?
            }
            _ => serde_json::to_writer(&mut *out, self)?,
        }
        Ok(())
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

    /// The REST body of a GraphQL result, written as it is serialized
    /// (no intermediate JSON tree: a 200-printer list is a third of a
    /// megabyte).
    pub fn rest<'a>(&'a self, value: &'a async_graphql::Value) -> Rest<'a> {
        Rest { shape: self, value }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(name: &str) -> Shape {
        Shape::Scalar {
            name: name.into(),
            enum_values: None,
            nullable: true,
        }
    }

    #[test]
    fn a_result_is_written_in_its_rest_shape() {
        let printer = Shape::Object {
            fields: vec![
                ("id".into(), scalar("ID")),
                ("name".into(), scalar("String")),
                ("status".into(), Shape::Raw { nullable: true }),
                ("missing".into(), scalar("Int")),
                ("ref".into(), scalar("ID")),
            ],
            nullable: false,
        };
        let list = Shape::List {
            item: Box::new(printer),
            nullable: false,
        };
        let value = async_graphql::Value::from_json(json!([{
            "name": "p",
            "id": "42",
            "status": {"raw": {"b": 1, "a": [true, null]}},
            "ref": "not a number",
            "unasked": 1,
        }]))
        .unwrap();
        let written = serde_json::to_string(&list.rest(&value)).unwrap();
        assert_eq!(
            written,
            r#"[{"id":42,"name":"p","status":{"b":1,"a":[true,null]},"missing":null,"ref":"not a number"}]"#
        );
        let none = async_graphql::Value::Null;
        assert_eq!(serde_json::to_string(&list.rest(&none)).unwrap(), "null");
        // Written as bytes, the same body; a printer kept as its REST
        // bytes is copied as it is, beside one resolved now.
        assert_eq!(list.rest(&value).to_vec().unwrap(), written.as_bytes());
        let kept = async_graphql::Value::Binary(br#"{"id":7,"kept":"as is"}"#.to_vec().into());
        let async_graphql::Value::List(items) = &value else {
            panic!("a list")
        };
        let mixed = async_graphql::Value::List(vec![kept, items[0].clone()]);
        assert_eq!(
            String::from_utf8(list.rest(&mixed).to_vec().unwrap()).unwrap(),
            format!(
                r#"[{{"id":7,"kept":"as is"}},{}]"#,
                &written[1..written.len() - 1]
            )
        );
    }
}
