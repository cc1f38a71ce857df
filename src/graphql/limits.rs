//! Query limits, checked before anything executes: document size in tokens,
//! aliases and root fields here (on the parsed document), depth and
//! complexity by async-graphql's validation (see `build_schema`), batch
//! size at the HTTP edge. A refusal names the limit and its value.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{ErrorExtensionValues, ServerError, ServerResult, Variables};

/// The limits, with defaults that fit every legitimate use printgate knows
/// (its REST documents use about 50 aliases; GraphiQL's introspection query
/// nests about 12 deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub depth: usize,
    pub complexity: usize,
    pub aliases: usize,
    pub root_fields: usize,
    pub tokens: usize,
    pub batch: usize,
    /// Largest document, in bytes of text.
    pub document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            depth: 15,
            complexity: 5000,
            aliases: 100,
            root_fields: 20,
            tokens: 10_000,
            batch: 10,
            document_bytes: 64 * 1024,
        }
    }
}

/// A refusal: `code` names the limit, `extensions.limit` gives its value.
pub fn refusal(code: &str, what: &str, limit: usize) -> ServerError {
    let mut err = ServerError::new(format!("{what} (limit {limit})."), None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    ext.set("limit", limit as u64);
    err.extensions = Some(ext);
    err
}

/// Counts a document's lexical tokens (names, numbers, strings,
/// punctuators), ignoring whitespace, commas and comments.
pub fn count_tokens(text: &str) -> usize {
    let mut n = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => {}
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            '"' => {
                n += 1;
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' => {
                n += 1;
                while chars
                    .next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    .is_some()
                {}
            }
            _ => n += 1,
        }
    }
    n
}

pub struct QueryLimits(pub Limits);

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension(self.0))
    }
}

struct LimitsExtension(Limits);

/// Aliased fields in a selection set, fragments counted where spread.
fn aliases(doc: &ExecutableDocument, set: &SelectionSet, seen: &mut HashSet<String>) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + aliases(doc, &f.node.selection_set.node, seen)
            }
            Selection::InlineFragment(f) => aliases(doc, &f.node.selection_set.node, seen),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.to_string();
                // A fragment spread twice is counted twice; a cycle (which
                // validation refuses anyway) is not followed.
                if !seen.insert(name.clone()) {
                    return 0;
                }
                let n = doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .map_or(0, |f| aliases(doc, &f.node.selection_set.node, seen));
                seen.remove(&name);
                n
            }
        })
        .sum()
}

/// Fields at the top of a selection set, fragments inlined.
fn root_fields(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> usize {
    if depth > 8 {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(f) => root_fields(doc, &f.node.selection_set.node, depth + 1),
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .map_or(0, |f| {
                    root_fields(doc, &f.node.selection_set.node, depth + 1)
                }),
        })
        .sum()
}

#[async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let l = self.0;
        if query.len() > l.document_bytes {
            return Err(refusal(
                "DOCUMENT_TOO_LARGE",
                "The document is too large, in bytes",
                l.document_bytes,
            ));
        }
        if count_tokens(query) > l.tokens {
            return Err(refusal(
                "QUERY_TOO_LARGE",
                "The document has too many tokens",
                l.tokens,
            ));
        }
        let doc = next.run(ctx, query, variables).await?;
        let ops: Vec<&SelectionSet> = match &doc.operations {
            DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
            DocumentOperations::Multiple(ops) => {
                ops.values().map(|op| &op.node.selection_set.node).collect()
            }
        };
        let mut total_aliases = 0;
        for set in ops {
            if root_fields(&doc, set, 0) > l.root_fields {
                return Err(refusal(
                    "TOO_MANY_ROOT_FIELDS",
                    "An operation selects too many root fields",
                    l.root_fields,
                ));
            }
            total_aliases += aliases(&doc, set, &mut HashSet::new());
        }
        if total_aliases > l.aliases {
            return Err(refusal(
                "TOO_MANY_ALIASES",
                "The document uses too many aliases",
                l.aliases,
            ));
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_counted_like_a_lexer_would() {
        assert_eq!(count_tokens("{ me { id } }"), 6);
        assert_eq!(count_tokens("# comment\n{ a(x: \"s t r\", y: 1.5) }"), 11);
    }
}

/// Live subscriptions per user, over every websocket of this instance:
/// what the per-user cap counts. Entries go when they reach zero, so the
/// map holds only users with live subscriptions.
#[derive(Default)]
pub struct SubscriptionCounts {
    by_user: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl SubscriptionCounts {
    /// Takes one place for `user` if they hold fewer than `limit`.
    pub fn take(&self, user: &str, limit: usize) -> bool {
        let Ok(mut m) = self.by_user.lock() else {
            return false;
        };
        let n = m.entry(user.to_owned()).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                m.remove(user);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Gives `n` places of `user` back.
    pub fn release(&self, user: &str, n: usize) {
        if let Ok(mut m) = self.by_user.lock()
            && let Some(held) = m.get_mut(user)
        {
            *held = held.saturating_sub(n);
            if *held == 0 {
                m.remove(user);
            }
        }
    }
}

/// The GraphQL websocket's timeouts and subscription caps.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    pub init_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub per_connection: usize,
    pub per_user: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        Self {
            init_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(90),
            per_connection: 100,
            per_user: 500,
        }
    }
}
