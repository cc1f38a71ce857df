//! Each listed printer's resolved answer, kept per printer and selection,
//! so a list resolves again only the printers that changed.
//!
//! On a live farm every agent's status invalidates its user's kept answers
//! (`readcache`), so a dashboard's list is computed again after nearly
//! every change although one printer changed. Resolving a printer is about
//! 40 fields through async-graphql (each one through every extension's
//! resolve hook). This keeps the resolved value of each printer of a
//! `printers` list, keyed by the selection (the selection set under the
//! list with its fragments, directives and arguments, and the request's
//! variables) and the printer, and reuses it while everything it was
//! resolved from is unchanged:
//! - the printer's row, by its revision (bumped by the database on every
//!   update, whoever writes it: see the `revisions` migration). The list
//!   first reads only its printers' ids and revisions (with their current
//!   prints'), on every request and every instance, so another instance's
//!   write is seen as soon as it is committed; whole rows are read only for
//!   the printers not kept ([`super::query`]);
//! - its current print's row, by its revision, when the selection shows
//!   the print (`currentPrint`, `notWatchingReason`);
//! - its owner's row but for its data version (`notWatchingReason` reads
//!   the owner's balance; the version moves with every status);
//!
//! and for at most [`MAX_AGE`], because some of what a printer shows is
//! derived from time (a status older than 120 s is offline, snapshot links
//! expire), the same rule as the read caches.
//!
//! Whether the request shows the agent's credential (REST does; GraphQL
//! only in `createPrinter`'s result) is part of the key, so a value showing
//! it never answers a request that does not.
//!
//! Not kept: selections that read other tables under a printer (a
//! printer's `prints` and `events`, a print's `predictions` and
//! `printer`), and a value resolved with errors (the errors would be lost
//! on reuse).
//!
//! Kept values are cloned into every answer that reuses them, and a clone
//! of a printer's value is some fifty allocations. A request whose writer
//! splices JSON (GraphQL over HTTP, and REST's printer lists, which write
//! their own shape: see [`Splice`]) gets each printer as its encoded bytes
//! instead, in a `Value::Binary` (which no resolver of this schema
//! produces otherwise) that its writer copies verbatim ([`write_spliced`]); a
//! request without a [`Splice`] (one executed inside the server, as the
//! tests' and the SDL's are) gets values. How a value is kept is part of
//! the key.
//!
//! Bounded by bytes, least recently used first (one user's selections can
//! push out another's: that costs a render, never a wrong answer).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::context::ContextBase;
use async_graphql::parser::types::{FragmentDefinition, Selection, SelectionSet};
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value, registry,
};
use entity::user;

use super::types::Printer;
use crate::bounded::ByteLru;
use crate::metrics::{CacheGauge, metrics};
use crate::service::fleet::Revisions;

/// Longest a resolved printer is reused, even when nothing it was resolved
/// from changed.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Default budget, in bytes.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Fields under a printer that read rows the list does not: a selection
/// with one of them is resolved every time.
const READS_OTHER_ROWS: &[&str] = &["prints", "events", "predictions", "printer"];
/// Fields whose value depends on the current print's row.
const READS_PRINT: &[&str] = &["currentPrint", "notWatchingReason"];
/// Deeper selections are not fingerprinted (validation bounds depth far
/// below this; it only keeps the walk finite).
const MAX_DEPTH: usize = 64;
/// Bytes an entry costs besides its values (key, bookkeeping).
const OVERHEAD: usize = 256;

/// What identifies a resolved printer: the selection's fingerprint, the
/// printer, and whether its credential is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    selection: (u64, u64),
    printer: i32,
    credential_shown: bool,
    /// 0: kept as a value; otherwise the [`Splice`] that encoded it.
    kept_as: u64,
}

/// How the writer of a request's answer takes the printers of its lists:
/// as JSON bytes, encoded by `encode` from the printer's resolved value,
/// which it writes verbatim where the printer goes. Request data; a request
/// without it gets values.
#[derive(Clone)]
pub struct Splice {
    kind: u64,
    encode: Arc<Encode>,
}

/// Encodes a printer's resolved value (`None`: it cannot be, then it is
/// given as a value).
type Encode = dyn Fn(&Value) -> Option<Vec<u8>> + Send + Sync;

/// The next [`Splice`] kind (1 is GraphQL's plain JSON).
static NEXT_KIND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(2);

impl Splice {
    /// A printer as GraphQL writes it: its value as JSON.
    pub fn graphql() -> Self {
        Self {
            kind: 1,
            encode: Arc::new(|value| serde_json::to_vec(value).ok()),
        }
    }

    /// A printer as `encode` writes it (another shape than GraphQL's):
    /// make one per shape and keep it, since each gets its own kind, and
    /// printers encoded by one are never given to another.
    pub fn encoded_by(encode: impl Fn(&Value) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        Self {
            kind: NEXT_KIND.fetch_add(1, Ordering::Relaxed),
            encode: Arc::new(encode),
        }
    }
}

/// Writes a resolved answer to `out` as serde_json writes it (compact),
/// with the bytes of spliced printers (see [`Splice`]) copied verbatim:
/// they are JSON serde_json wrote, and checking them again (as a
/// `RawValue` would) cost as much as writing the rest of a 1,000-printer
/// list.
pub fn write_spliced(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Binary(json) => out.extend_from_slice(json),
        Value::List(items) => write_array(out, items, write_spliced)?,
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k.as_str())?;
                out.push(b':');
                write_spliced(out, v)?;
            }
            out.push(b'}');
        }
        v => serde_json::to_writer(&mut *out, v)?,
    }
    Ok(())
}

/// Writes `items` to `out` as a JSON array, each one by `write`.
pub fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item)?;
    }
    out.push(b']');
    Ok(())
}

/// Serializes encoded JSON as it is, through any serializer (checked, not
/// copied: a `RawValue` is what serde_json writes verbatim). For writers
/// that cannot take [`write_spliced`]'s bytes.
pub fn write_json<S: serde::Serializer>(json: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    let raw: &serde_json::value::RawValue =
        serde_json::from_slice(json).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(raw, serializer)
}

/// The revisions a printer's value was resolved from: its row's, and its
/// current print's (id and revision) when the selection shows the print,
/// as the list read them first. The value is resolved from rows read after
/// that, so it is kept under revisions no newer than its rows': a row that
/// changed in between makes the entry miss next time (a render), never
/// serve (revisions only move forward, so the ones recorded are never seen
/// again once the rows moved on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    revision: i64,
    current: Option<(i32, i64)>,
}

/// A resolved printer and what it was resolved from.
struct Rendered {
    from: Source,
    owner: user::Model,
    at: Instant,
    /// The value, or its encoding (`Value::Binary`, cheap to clone).
    value: Value,
}

/// The kept printers.
pub struct RenderCache {
    entries: Mutex<ByteLru<Key, Rendered>>,
    /// Two independently keyed hashers make the 128-bit fingerprint (keyed
    /// per process, so a client cannot aim at a collision).
    hashers: (RandomState, RandomState),
}

impl std::fmt::Debug for RenderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderCache").finish_non_exhaustive()
    }
}

impl RenderCache {
    /// An empty cache of at most `max_bytes`, reporting its size to `gauge`.
    pub fn new(max_bytes: usize, gauge: Arc<CacheGauge>) -> Self {
        Self {
            entries: Mutex::new(ByteLru::new(gauge, max_bytes)),
            hashers: (RandomState::new(), RandomState::new()),
        }
    }

    /// The kept value of `key`, when it was resolved from these revisions
    /// and this owner less than [`MAX_AGE`] ago.
    fn get(&self, key: &Key, from: Source, owner: &user::Model) -> Option<Value> {
        let mut entries = self.entries.lock().ok()?;
        let kept = entries.get(key)?;
        (kept.at.elapsed() < MAX_AGE && kept.from == from && kept.owner == *owner)
            .then(|| kept.value.clone())
    }

    fn put(&self, key: Key, rendered: Rendered) {
        let size = OVERHEAD + weight(&rendered.value);
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(key, rendered, size);
        }
    }
}

/// How one request's `printers` list uses the cache: its selection's
/// fingerprint and the owner the printers were listed for.
pub struct Scope {
    cache: Arc<RenderCache>,
    selection: (u64, u64),
    reads_print: bool,
    owner: user::Model,
}

impl Scope {
    /// The scope of the list field `ctx` resolves; `None` when the cache
    /// is off or the selection reads other rows under a printer.
    pub fn of(ctx: &async_graphql::Context<'_>, owner: &user::Model) -> Option<Arc<Self>> {
        let cache = ctx.data_opt::<Arc<RenderCache>>()?.clone();
        let mut print = Fingerprint::new(&cache.hashers);
        let mut walk = Walk {
            fragments: &ctx.query_env.fragments,
            out: &mut print,
            reads_print: false,
        };
        walk.set(&ctx.item.node.selection_set.node, 0)?;
        let reads_print = walk.reads_print;
        // Variables decide arguments and @skip/@include anywhere below.
        let _ = write!(print, "|{}", ctx.query_env.variables);
        Some(Arc::new(Self {
            selection: print.finish(),
            cache,
            reads_print,
            // The data version moves with every change to any of the
            // owner's printers; nothing a printer shows reads it.
            owner: user::Model {
                data_version: 0,
                ..owner.clone()
            },
        }))
    }
}

impl Scope {
    /// What a listed printer's value is resolved from, by the revisions the
    /// list read first.
    pub fn source(&self, listed: &Revisions) -> Source {
        Source {
            revision: listed.revision,
            current: listed.current_print.filter(|_| self.reads_print),
        }
    }

    /// The value kept for a listed printer, when it was resolved from the
    /// revisions the list just read.
    pub fn kept<T>(&self, ctx: &ContextBase<'_, T>, listed: &Revisions) -> Option<Value> {
        let key = key(ctx, self, listed.id);
        let value = self.cache.get(&key, self.source(listed), &self.owner)?;
        metrics()
            .printer_render_hits
            .fetch_add(1, Ordering::Relaxed);
        Some(value)
    }
}

/// The key of a printer's value in a request.
fn key<T>(ctx: &ContextBase<'_, T>, scope: &Scope, printer: i32) -> Key {
    Key {
        selection: scope.selection,
        printer,
        credential_shown: reveals(ctx, printer),
        kept_as: splice(ctx).map_or(0, |s| s.kind),
    }
}

/// A printer in a `printers` list: a value kept for it, or its row,
/// resolved as [`Printer`] (the same GraphQL type) and kept under what the
/// list read of it when its list has a [`Scope`].
pub enum Listed {
    /// Taken when resolved (a list item is resolved once).
    Kept(Mutex<Option<Value>>),
    Row {
        printer: Box<Printer>,
        keep: Option<(Arc<Scope>, Source)>,
    },
}

impl Listed {
    /// A printer resolved and not kept.
    pub fn unkept(printer: Printer) -> Self {
        Self::Row {
            printer: Box::new(printer),
            keep: None,
        }
    }

    /// A printer resolved and kept under `from` (see [`Scope::source`]).
    pub fn to_keep(printer: Printer, scope: Arc<Scope>, from: Source) -> Self {
        Self::Row {
            printer: Box::new(printer),
            keep: Some((scope, from)),
        }
    }

    pub fn kept(value: Value) -> Self {
        Self::Kept(Mutex::new(Some(value)))
    }

    /// A kept printer's value, taken (`None` for a row to resolve, or a
    /// value already taken, which then resolves to its error).
    fn take_kept(&self) -> Option<Value> {
        match self {
            Self::Kept(value) => value.lock().ok().and_then(|mut v| v.take()),
            Self::Row { .. } => None,
        }
    }
}

/// A `printers` list: a `[Printer!]!` like a `Vec` of its printers, but
/// resolved without the per-item work for the kept ones.
///
/// async-graphql resolves each item of a list in a context of its own,
/// through every extension's resolve hook, with two type names formatted
/// for it: some ten allocations and a boxed future per hook, which for a
/// 1,000-printer list of kept values (nothing left to resolve) cost as much
/// as the rest of the request. Kept printers are placed as they are; the
/// others are resolved exactly as a list's items are (the same context,
/// path and hooks).
pub struct Listing(pub Vec<Listed>);

impl OutputType for Listing {
    fn type_name() -> Cow<'static, str> {
        <Vec<Listed> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<Listed> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut registry::Registry) -> String {
        <Vec<Listed> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        let mut items: Vec<Option<Value>> = self.0.iter().map(Listed::take_kept).collect();
        let parent = Self::type_name();
        let item_type = Listed::qualified_type_name();
        let (parent, item_type) = (parent.as_ref(), item_type.as_str());
        let pending = items
            .iter()
            .enumerate()
            .filter(|(_, kept)| kept.is_none())
            .map(|(idx, _)| {
                let ctx = ctx.clone();
                let listed = &self.0[idx];
                async move {
                    let ctx_idx = ctx.with_index(idx);
                    let resolve = async {
                        OutputType::resolve(listed, &ctx_idx, field)
                            .await
                            .map(Some)
                            .map_err(|err| ctx_idx.set_error_path(err))
                    };
                    futures_util::pin_mut!(resolve);
                    let Some(path_node) = ctx_idx.path_node.as_ref() else {
                        return Ok((idx, resolve.await?));
                    };
                    let info = async_graphql::extensions::ResolveInfo {
                        path_node,
                        parent_type: parent,
                        return_type: item_type,
                        name: field.node.name.node.as_str(),
                        alias: field.node.alias.as_ref().map(|a| a.node.as_str()),
                        // A printer is never introspection.
                        is_for_introspection: false,
                        field: &field.node,
                    };
                    let value = ctx.query_env.extensions.resolve(info, &mut resolve).await?;
                    Ok::<_, async_graphql::ServerError>((idx, value))
                }
            });
        for (idx, value) in futures_util::future::try_join_all(pending).await? {
            items[idx] = value;
        }
        // A hook that answered nothing answers null, as a list item's would.
        Ok(Value::List(
            items.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }
}

impl OutputType for Listed {
    fn type_name() -> Cow<'static, str> {
        <Printer as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut registry::Registry) -> String {
        <Printer as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        let (printer, keep) = match self {
            Self::Kept(_) => {
                return self.take_kept().ok_or_else(|| {
                    async_graphql::ServerError::new("a listed printer was resolved twice", None)
                });
            }
            Self::Row { printer, keep } => (printer, keep),
        };
        let Some((scope, from)) = keep else {
            return OutputType::resolve(&**printer, ctx, field).await;
        };
        let key = key(ctx, scope, printer.0.id);
        metrics()
            .printer_render_misses
            .fetch_add(1, Ordering::Relaxed);
        let errors_before = errors(ctx);
        let mut value = OutputType::resolve(&**printer, ctx, field).await?;
        // Any error while resolving (this printer's or a sibling's: they
        // share the list) leaves the value unkept.
        if errors(ctx) == errors_before {
            if let Some(json) = splice(ctx).and_then(|s| (s.encode)(&value)) {
                value = Value::Binary(json.into());
            } else if key.kept_as != 0 {
                // Not encoded after all: kept (and given) as a value.
                return Ok(value);
            }
            scope.cache.put(
                key,
                Rendered {
                    from: *from,
                    owner: scope.owner.clone(),
                    at: Instant::now(),
                    value: value.clone(),
                },
            );
        }
        Ok(value)
    }
}

/// Whether this request shows the printer's agent credential (REST's
/// answers and `createPrinter`'s result do).
fn reveals<T>(ctx: &ContextBase<'_, T>, printer: i32) -> bool {
    ctx.data_opt::<super::context::ShowCredentials>().is_some()
        || ctx
            .data_opt::<Arc<super::context::RequestContext>>()
            .is_some_and(|r| r.revealed(printer))
}

/// How this request's writer takes listed printers, if it splices them.
fn splice<'a, T>(ctx: &ContextBase<'a, T>) -> Option<&'a Splice> {
    ctx.data_opt::<Splice>()
}

/// The number of errors the request has collected so far.
fn errors(ctx: &ContextSelectionSet<'_>) -> usize {
    ctx.query_env
        .errors
        .lock()
        .map_or(usize::MAX, |errors| errors.len())
}

/// Writes a selection set, fragments expanded, to a fingerprint, noting
/// what it reads.
struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    out: &'a mut Fingerprint,
    reads_print: bool,
}

impl Walk<'_> {
    /// `None`: the selection is not to be kept.
    fn set(&mut self, set: &SelectionSet, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let _ = self.out.write_char('{');
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    if READS_OTHER_ROWS.contains(&name) {
                        return None;
                    }
                    self.reads_print |= READS_PRINT.contains(&name);
                    let alias = f.alias.as_ref().map_or("", |a| a.node.as_str());
                    let _ = write!(self.out, "{alias}:{name}(");
                    for (n, v) in &f.arguments {
                        let _ = write!(self.out, "{}={},", n.node, v.node);
                    }
                    self.directives(&f.directives);
                    self.set(&f.selection_set.node, depth + 1)?;
                }
                Selection::FragmentSpread(s) => {
                    let s = &s.node;
                    let _ = write!(self.out, "...{}", s.fragment_name.node);
                    self.directives(&s.directives);
                    let fragment = self.fragments.get(&s.fragment_name.node)?;
                    let _ = write!(self.out, "on {}", fragment.node.type_condition.node.on.node);
                    self.directives(&fragment.node.directives);
                    self.set(&fragment.node.selection_set.node, depth + 1)?;
                }
                Selection::InlineFragment(i) => {
                    let i = &i.node;
                    let on = i.type_condition.as_ref().map(|t| t.node.on.node.as_str());
                    let _ = write!(self.out, "...on {}", on.unwrap_or(""));
                    self.directives(&i.directives);
                    self.set(&i.selection_set.node, depth + 1)?;
                }
            }
            let _ = self.out.write_char(',');
        }
        let _ = self.out.write_char('}');
        Some(())
    }

    fn directives(&mut self, directives: &[Positioned<async_graphql::parser::types::Directive>]) {
        for d in directives {
            let _ = write!(self.out, "@{}(", d.node.name.node);
            for (n, v) in &d.node.arguments {
                let _ = write!(self.out, "{}={},", n.node, v.node);
            }
            let _ = self.out.write_char(')');
        }
    }
}

/// A 128-bit keyed hash of what is written to it.
struct Fingerprint {
    a: std::hash::DefaultHasher,
    b: std::hash::DefaultHasher,
}

impl Fingerprint {
    fn new((a, b): &(RandomState, RandomState)) -> Self {
        Self {
            a: a.build_hasher(),
            b: b.build_hasher(),
        }
    }

    fn finish(&self) -> (u64, u64) {
        (self.a.finish(), self.b.finish())
    }
}

impl std::fmt::Write for Fingerprint {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.a.write(s.as_bytes());
        self.b.write(s.as_bytes());
        Ok(())
    }
}

/// About the bytes a resolved value holds.
fn weight(value: &Value) -> usize {
    32 + match value {
        Value::String(s) => s.len(),
        Value::Binary(b) => b.len(),
        Value::Enum(e) => e.len(),
        Value::List(items) => items.iter().map(weight).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| 32 + k.len() + weight(v)).sum(),
        Value::Null | Value::Number(_) | Value::Boolean(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_written_as_serde_json_writes_it_with_spliced_bytes_as_they_are() {
        let value = Value::from_json(serde_json::json!({
            "printers": [{"id": "1", "name": "a \"quoted\" \u{e9}"}, null],
            "key \"with\" quotes": [1.5, true, {"nested": []}],
            "empty": {},
        }))
        .unwrap();
        let mut out = Vec::new();
        write_spliced(&mut out, &value).unwrap();
        assert_eq!(out, serde_json::to_vec(&value).unwrap());

        let spliced = Value::List(vec![
            Value::Binary(br#"{"id":"2","kept":true}"#.to_vec().into()),
            Value::from("resolved"),
        ]);
        let mut out = Vec::new();
        write_spliced(&mut out, &spliced).unwrap();
        assert_eq!(out, br#"[{"id":"2","kept":true},"resolved"]"#);
    }

    #[test]
    fn weight_counts_strings_and_nesting() {
        let small = Value::from("a");
        let big = Value::List(vec![Value::from("a".repeat(1000)); 10]);
        assert!(weight(&big) > 10_000);
        assert!(weight(&small) < 64);
    }
}
