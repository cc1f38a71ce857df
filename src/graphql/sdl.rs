//! The schema as SDL, printed from the schema's own introspection exactly
//! as graphql-js prints a client schema built from it
//! (`printSchema(buildClientSchema(introspection))`): so `schema.graphql`
//! is byte for byte what a frontend's tools derive from the live endpoint
//! (CI checks it against graphql-js itself). async-graphql's own `sdl()`
//! differs in layout and omits `@specifiedBy` and the schema's description.

use serde_json::Value;

/// What `__schema { description }` says (async-graphql's own is a
/// sentence about GraphQL schemas in general).
pub const SCHEMA_DESCRIPTION: &str = "printgate: a fleet of 3D printers (their status, prints, failure alerts and commands), live over subscriptions. Ids are the numeric ids the REST paths use; every object a client caches has an `id` (the parts of a printer carry the printer's).";

/// Puts [`SCHEMA_DESCRIPTION`] in an introspection answer's
/// `__schema { description }` (async-graphql answers with a sentence about
/// GraphQL schemas in general). Done on the finished response, once per
/// operation: a resolve hook would cost every field of every request.
pub fn describe_schema(response: &mut async_graphql::Response) {
    use async_graphql::Value as V;
    let V::Object(data) = &mut response.data else {
        return;
    };
    if let Some(V::Object(schema)) = data.get_mut("__schema")
        && let Some(description) = schema.get_mut("description")
    {
        *description = V::String(SCHEMA_DESCRIPTION.into());
    }
}

/// graphql-js's `getIntrospectionQuery` with every option on.
pub const INTROSPECTION_QUERY: &str = r#"query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}
fragment TypeRef on __Type {
  kind
  name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}"#;

const SPECIFIED_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];
const SPECIFIED_DIRECTIVES: [&str; 5] = ["include", "skip", "deprecated", "specifiedBy", "oneOf"];
const DEFAULT_DEPRECATION_REASON: &str = "No longer supported";

/// Prints the `__schema` object of an introspection result.
pub fn print(schema: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(def) = schema_definition(schema) {
        parts.push(def);
    }
    for d in list(schema, "directives") {
        if !SPECIFIED_DIRECTIVES.contains(&str_of(d, "name")) {
            parts.push(directive(d));
        }
    }
    for t in list(schema, "types") {
        let name = str_of(t, "name");
        if name.starts_with("__") || SPECIFIED_SCALARS.contains(&name) {
            continue;
        }
        parts.push(type_def(t));
    }
    parts.join("\n\n")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn root_name<'a>(schema: &'a Value, key: &str) -> Option<&'a str> {
    schema.get(key)?.get("name")?.as_str()
}

fn schema_definition(schema: &Value) -> Option<String> {
    let roots = [
        ("query", "queryType", "Query"),
        ("mutation", "mutationType", "Mutation"),
        ("subscription", "subscriptionType", "Subscription"),
    ];
    let common = roots
        .iter()
        .all(|(_, key, usual)| root_name(schema, key).is_none_or(|n| n == *usual));
    let description = schema.get("description").and_then(Value::as_str);
    if description.is_none() && common {
        return None;
    }
    let ops: Vec<String> = roots
        .iter()
        .filter_map(|(op, key, _)| root_name(schema, key).map(|n| format!("  {op}: {n}")))
        .collect();
    Some(format!(
        "{}schema {{\n{}\n}}",
        description_of(schema, "", true),
        ops.join("\n")
    ))
}

fn directive(d: &Value) -> String {
    let locations: Vec<&str> = list(d, "locations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{}directive @{}{}{} on {}",
        description_of(d, "", true),
        str_of(d, "name"),
        args(list(d, "args"), ""),
        if d.get("isRepeatable").and_then(Value::as_bool) == Some(true) {
            " repeatable"
        } else {
            ""
        },
        locations.join(" | ")
    )
}

fn type_def(t: &Value) -> String {
    let name = str_of(t, "name");
    let desc = description_of(t, "", true);
    match str_of(t, "kind") {
        "SCALAR" => {
            let by = t
                .get("specifiedByURL")
                .and_then(Value::as_str)
                .map(|u| format!(" @specifiedBy(url: {})", print_string(u)))
                .unwrap_or_default();
            format!("{desc}scalar {name}{by}")
        }
        kind @ ("OBJECT" | "INTERFACE") => {
            let keyword = if kind == "OBJECT" {
                "type"
            } else {
                "interface"
            };
            let interfaces: Vec<String> = list(t, "interfaces").iter().map(type_ref).collect();
            let implements = if interfaces.is_empty() {
                String::new()
            } else {
                format!(" implements {}", interfaces.join(" & "))
            };
            let fields: Vec<String> = list(t, "fields")
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    format!(
                        "{}  {}{}: {}{}",
                        description_of(f, "  ", i == 0),
                        str_of(f, "name"),
                        args(list(f, "args"), "  "),
                        f.get("type").map(type_ref).unwrap_or_default(),
                        deprecated(f)
                    )
                })
                .collect();
            format!("{desc}{keyword} {name}{implements}{}", block(&fields))
        }
        "UNION" => {
            let members: Vec<String> = list(t, "possibleTypes").iter().map(type_ref).collect();
            let members = if members.is_empty() {
                String::new()
            } else {
                format!(" = {}", members.join(" | "))
            };
            format!("{desc}union {name}{members}")
        }
        "ENUM" => {
            let values: Vec<String> = list(t, "enumValues")
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    format!(
                        "{}  {}{}",
                        description_of(v, "  ", i == 0),
                        str_of(v, "name"),
                        deprecated(v)
                    )
                })
                .collect();
            format!("{desc}enum {name}{}", block(&values))
        }
        "INPUT_OBJECT" => {
            let fields: Vec<String> = list(t, "inputFields")
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{}  {}", description_of(f, "  ", i == 0), input_value(f)))
                .collect();
            let one_of = if t.get("isOneOf").and_then(Value::as_bool) == Some(true) {
                " @oneOf"
            } else {
                ""
            };
            format!("{desc}input {name}{one_of}{}", block(&fields))
        }
        _ => String::new(),
    }
}

fn block(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" {{\n{}\n}}", items.join("\n"))
    }
}

fn args(args: &[Value], indentation: &str) -> String {
    if args.is_empty() {
        return String::new();
    }
    let described = |a: &Value| {
        a.get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.is_empty())
    };
    if !args.iter().any(described) {
        let all: Vec<String> = args.iter().map(input_value).collect();
        return format!("({})", all.join(", "));
    }
    let inner = format!("  {indentation}");
    let lines: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "{}{inner}{}",
                description_of(a, &inner, i == 0),
                input_value(a)
            )
        })
        .collect();
    format!("(\n{}\n{indentation})", lines.join("\n"))
}

fn input_value(v: &Value) -> String {
    let mut out = format!(
        "{}: {}",
        str_of(v, "name"),
        v.get("type").map(type_ref).unwrap_or_default()
    );
    if let Some(default) = v.get("defaultValue").and_then(Value::as_str) {
        out.push_str(" = ");
        out.push_str(default);
    }
    out.push_str(&deprecated(v));
    out
}

fn type_ref(t: &Value) -> String {
    match str_of(t, "kind") {
        "NON_NULL" => format!("{}!", t.get("ofType").map(type_ref).unwrap_or_default()),
        "LIST" => format!("[{}]", t.get("ofType").map(type_ref).unwrap_or_default()),
        _ => str_of(t, "name").to_owned(),
    }
}

fn deprecated(v: &Value) -> String {
    if v.get("isDeprecated").and_then(Value::as_bool) != Some(true) {
        return String::new();
    }
    match v.get("deprecationReason").and_then(Value::as_str) {
        None => String::new(),
        Some(DEFAULT_DEPRECATION_REASON) => " @deprecated".to_owned(),
        Some(reason) => format!(" @deprecated(reason: {})", print_string(reason)),
    }
}

/// graphql-js's `printDescription`.
fn description_of(def: &Value, indentation: &str, first_in_block: bool) -> String {
    let Some(description) = def.get("description").and_then(Value::as_str) else {
        return String::new();
    };
    let printed = if printable_as_block_string(description) {
        print_block_string(description)
    } else {
        print_string(description)
    };
    let prefix = if !indentation.is_empty() && !first_in_block {
        format!("\n{indentation}")
    } else {
        indentation.to_owned()
    };
    format!(
        "{prefix}{}\n",
        printed.replace('\n', &format!("\n{indentation}"))
    )
}

fn is_white_space(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t'))
}

/// graphql-js's `isPrintableAsBlockString`.
fn printable_as_block_string(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let mut is_empty_line = true;
    let mut has_indent = false;
    let mut has_common_indent = true;
    let mut seen_non_empty_line = false;
    for c in value.chars() {
        match c {
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}' | '\u{f}' | '\r' => return false,
            '\n' => {
                if is_empty_line && !seen_non_empty_line {
                    return false;
                }
                seen_non_empty_line = true;
                is_empty_line = true;
                has_indent = false;
            }
            '\t' | ' ' => has_indent = has_indent || is_empty_line,
            _ => {
                has_common_indent = has_common_indent && has_indent;
                is_empty_line = false;
            }
        }
    }
    if is_empty_line {
        return false;
    }
    !(has_common_indent && seen_non_empty_line)
}

/// graphql-js's `printBlockString`.
fn print_block_string(value: &str) -> String {
    let escaped = value.replace("\"\"\"", "\\\"\"\"");
    let lines: Vec<&str> = escaped.split('\n').collect();
    let single_line = lines.len() == 1;
    let force_leading_new_line = lines.len() > 1
        && lines[1..]
            .iter()
            .all(|l| l.is_empty() || is_white_space(l.chars().next()));
    let has_trailing_triple_quotes = escaped.ends_with("\\\"\"\"");
    let has_trailing_quote = value.ends_with('"') && !has_trailing_triple_quotes;
    let has_trailing_slash = value.ends_with('\\');
    let force_trailing_newline = has_trailing_quote || has_trailing_slash;
    // graphql-js counts UTF-16 code units.
    let long = value.encode_utf16().count() > 70;
    let multiple_lines = !single_line
        || long
        || force_trailing_newline
        || force_leading_new_line
        || has_trailing_triple_quotes;
    let skip_leading_new_line = single_line && is_white_space(value.chars().next());
    let mut out = String::from("\"\"\"");
    if (multiple_lines && !skip_leading_new_line) || force_leading_new_line {
        out.push('\n');
    }
    out.push_str(&escaped);
    if multiple_lines || force_trailing_newline {
        out.push('\n');
    }
    out.push_str("\"\"\"");
    out
}

/// graphql-js's `printString`.
fn print_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_print_as_graphql_js_prints_them() {
        assert_eq!(print_block_string("Short."), "\"\"\"Short.\"\"\"");
        let long = "x".repeat(71);
        assert_eq!(print_block_string(&long), format!("\"\"\"\n{long}\n\"\"\""));
        assert_eq!(print_block_string("a\nb"), "\"\"\"\na\nb\n\"\"\"");
        assert_eq!(
            print_block_string("say \"hi\""),
            "\"\"\"\nsay \"hi\"\n\"\"\""
        );
        assert!(!printable_as_block_string("\nleading"));
        assert!(!printable_as_block_string("trailing\n"));
        assert_eq!(print_string("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }
}
