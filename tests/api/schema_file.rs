//! `schema.graphql` must equal what `printgate schema` prints. When it is
//! stale this test rewrites it and fails, so the fix is to commit the file.

use std::path::Path;

#[test]
fn schema_graphql_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let actual = printgate::graphql::sdl();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != actual {
        std::fs::write(&path, &actual).unwrap();
        panic!("schema.graphql was stale and has been rewritten; review and commit it");
    }
}

#[test]
fn the_schema_builds_and_names_every_root() {
    let sdl = printgate::graphql::sdl();
    for needle in [
        "type Query",
        "type Mutation",
        "scalar DateTime",
        "enum AlertOverwrite",
    ] {
        assert!(sdl.contains(needle), "{needle} missing");
    }
}
