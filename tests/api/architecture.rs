//! The invariants of docs/ARCHITECTURE.md, checked by reading the source
//! (as rust-analyzer's `xtask/src/tidy.rs` does): each test fails when a
//! change breaks one, naming the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir` (relative paths), GraphiQL's assets aside.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The lines of `file` outside `#[cfg(test)]` modules (tests may use what
/// the code may not).
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        out.push((i + 1, line.to_owned()));
    }
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// Fails listing every line of `files` that mentions one of `forbidden`.
fn forbid(files: &[PathBuf], forbidden: &[&str], rule: &str) {
    let mut found = Vec::new();
    for f in files {
        for (n, line) in code_lines(f) {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            for bad in forbidden {
                if mentions(l, bad) {
                    found.push(format!("{}:{n}: {}", rel(f), l));
                }
            }
        }
    }
    assert!(found.is_empty(), "{rule}:\n{}", found.join("\n"));
}

/// Whether `line` mentions `word` as a whole path segment (so
/// `entity::` does not match `Identity::`).
fn mentions(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        !word.starts_with(|c: char| c.is_alphanumeric())
            || !line[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn under(dir: &str) -> Vec<PathBuf> {
    rust_files(&root().join(dir))
}

#[test]
fn every_file_starts_with_a_module_doc() {
    let mut missing = Vec::new();
    for dir in ["src", "entity/src", "migration/src", "bench/src", "tests"] {
        for f in under(dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(rel(&f));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:?}"
    );
}

#[test]
fn entity_has_no_web_types_and_migration_never_imports_entity() {
    forbid(
        &under("entity/src"),
        &[
            "axum",
            "async_graphql",
            "serde::",
            "serde_json::to_",
            "Serialize",
        ],
        "entity holds the storage shape only",
    );
    forbid(
        &under("migration/src"),
        &["entity::"],
        "migration never imports entity",
    );
}

#[test]
fn the_service_knows_nothing_of_http_or_graphql() {
    forbid(
        &under("src/service"),
        &[
            "axum",
            "async_graphql",
            "crate::rest",
            "crate::agent",
            "crate::graphql",
            "crate::state",
            "reqwest",
        ],
        "service never imports an edge, axum, async-graphql or an HTTP client",
    );
}

#[test]
fn rest_reaches_the_domain_only_through_the_gateway() {
    forbid(
        &under("src/rest"),
        &[
            ".service()",
            "crate::service",
            "sea_orm",
            "entity::",
            "crate::agent",
            "crate::graphql::http",
            "crate::graphql::ws",
        ],
        "rest runs GraphQL documents through the gateway and imports no other edge",
    );
}

#[test]
fn edges_do_not_import_each_other() {
    forbid(
        &under("src/agent"),
        &["crate::rest", "crate::graphql", "crate::app"],
        "the agent edge imports no other edge",
    );
    let graphql: Vec<PathBuf> = under("src/graphql");
    forbid(
        &graphql,
        &["crate::rest", "crate::agent", "crate::app"],
        "the GraphQL edge imports no other edge",
    );
}

#[test]
fn only_the_commands_import_the_app() {
    let allowed = [
        "src/cli.rs",
        "src/demo.rs",
        "src/receiver.rs",
        "src/main.rs",
        "src/lib.rs",
        "src/app.rs",
    ];
    let files: Vec<PathBuf> = under("src")
        .into_iter()
        .filter(|f| !allowed.contains(&rel(f).as_str()))
        .collect();
    forbid(
        &files,
        &["crate::app"],
        "app.rs only composes; nothing below imports it",
    );
}

/// The module file a `crate::a::b::C` path names: the longest prefix that
/// is a file.
fn module_of(path: &str, files: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    for n in (1..=parts.len()).rev() {
        let base = format!("src/{}", parts[..n].join("/"));
        for candidate in [format!("{base}.rs"), format!("{base}/mod.rs")] {
            if files.contains(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

#[test]
fn no_import_circle_runs_through_the_state() {
    let files: BTreeSet<String> = under("src").iter().map(|f| rel(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let mut deps = BTreeSet::new();
        for (_, line) in code_lines(&root().join(f)) {
            let mut rest = line.as_str();
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if let Some(m) = module_of(path.trim_end_matches(':'), &files)
                    && &m != f
                {
                    deps.insert(m);
                }
            }
        }
        graph.insert(f.clone(), deps);
    }
    // Everything state.rs reaches must not reach state.rs back.
    let start = "src/state.rs".to_owned();
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(String, Vec<String>)> = graph[&start]
        .iter()
        .map(|d| (d.clone(), vec![start.clone(), d.clone()]))
        .collect();
    while let Some((node, trail)) = stack.pop() {
        assert!(
            node != start,
            "import circle through the state: {}",
            trail.join(" -> ")
        );
        if !seen.insert(node.clone()) {
            continue;
        }
        for d in graph.get(&node).into_iter().flatten() {
            let mut t = trail.clone();
            t.push(d.clone());
            stack.push((d.clone(), t));
        }
    }
}

#[test]
fn a_revision_only_ever_moves_forward() {
    // The kept printers of lists trust `revision` to move on every update
    // (the trigger of the `revisions` migration); code that set it could
    // set it back to a value a kept answer was resolved from. Code may
    // only add one to it (what the trigger does), nothing else.
    forbid(
        &under("src"),
        &["revision: Set(", "revision = Set(", "SET revision"],
        "only the database's trigger sets a row's revision",
    );
    let mut found = Vec::new();
    for f in under("src") {
        // The code without comments or whitespace: a statement as one line.
        let code: String = code_lines(&f)
            .into_iter()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .flat_map(|(_, l)| l.chars().filter(|c| !c.is_whitespace()).collect::<Vec<_>>())
            .collect();
        for (at, _) in code.match_indices("Column::Revision,") {
            let written = &code[at..];
            let plus_one = ["printer", "print"].iter().any(|t| {
                written
                    .strip_prefix(&format!(
                        "Column::Revision,Expr::col({t}::Column::Revision).add(1)"
                    ))
                    .is_some_and(|rest| rest.starts_with(')') || rest.starts_with(",)"))
            });
            if !plus_one {
                found.push(format!(
                    "{}: {}",
                    rel(&f),
                    written.chars().take(80).collect::<String>()
                ));
            }
        }
        // The same rule for SQL written out (the status writer's batch).
        for quote in ["\"", "\\\""] {
            let col = format!("{quote}revision{quote}=");
            for (at, _) in code.match_indices(&col) {
                let written = &code[at + col.len()..];
                let plus_one = ["printers", "prints"].iter().any(|t| {
                    written.starts_with(&format!("{quote}{t}{quote}.{quote}revision{quote}+1"))
                });
                if !plus_one {
                    found.push(format!(
                        "{}: {}",
                        rel(&f),
                        code[at..].chars().take(80).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a revision is only ever written as itself plus one:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_unwrap_or_expect_outside_tests() {
    let mut found = Vec::new();
    for f in under("src") {
        for (n, line) in code_lines(&f) {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            if l.contains(".unwrap()") || l.contains(".expect(") {
                found.push(format!("{}:{n}: {l}", rel(&f)));
            }
        }
    }
    assert!(
        found.is_empty(),
        "unwrap/expect a client could reach:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_mutation_resolver_asks_whether_the_credential_may_write() {
    // A mutation that took `viewer(ctx)` would let a READ API key write.
    let mutation = root().join("src/graphql/mutation.rs");
    let integrations = root().join("src/graphql/integrations.rs");
    let mut found = Vec::new();
    for (n, line) in code_lines(&mutation) {
        if line.contains("viewer(ctx)") {
            found.push(format!("src/graphql/mutation.rs:{n}"));
        }
    }
    let mut in_mutations = false;
    for (n, line) in code_lines(&integrations) {
        if line.starts_with("impl IntegrationMutation") {
            in_mutations = true;
        }
        if in_mutations && line.contains("viewer(ctx)") {
            found.push(format!("src/graphql/integrations.rs:{n}"));
        }
    }
    assert!(in_mutations, "IntegrationMutation not found");
    assert!(
        found.is_empty(),
        "mutation resolvers must start with writer(ctx): {found:?}"
    );
}
