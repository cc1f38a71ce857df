//! Automatic persisted queries (Apollo's protocol), over POST and GET.
//!
//! A client sends `extensions.persistedQuery = {version: 1, sha256Hash}`,
//! first without the document: printgate answers PERSISTED_QUERY_NOT_FOUND
//! until the client sends hash and document together, which registers it.
//! The document is restored here, at the HTTP edge, before anything else
//! looks at the request, so a GET that names a mutation by hash is still
//! refused. A document is registered only once it has parsed and passed
//! validation and the query limits (the HTTP edge calls
//! [`PersistedQueries::register`] after executing it), so the store only
//! ever holds documents that can run; it is bounded by bytes, least
//! recently used first. Registrations are per instance; a client whose hash
//! another instance does not know simply registers again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::bounded::ByteLru;
use crate::metrics::CacheGauge;

/// Default bytes of document text kept.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Why a request's persisted query could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum ApqError {
    /// The hash is unknown: send the document with it.
    NotFound,
    /// The extension is malformed, of another version, or the hash does not
    /// match the document.
    Invalid(&'static str),
    /// Trusted-documents mode: the document is not one of the registered
    /// ones.
    NotAllowed,
}

/// The registered documents, by SHA-256 hash (hex).
pub struct PersistedQueries {
    docs: Mutex<ByteLru<String, Arc<str>>>,
    /// Trusted-documents mode: only these documents run, and clients cannot
    /// register more.
    trusted: Option<HashMap<String, Arc<str>>>,
}

/// What a request carrying the extension asks of the store, once resolved.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Nothing to remember (no extension, or a known document).
    Nothing,
    /// A new document with its hash: register it if it runs.
    Register(String),
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES, Arc::default())
    }
}

/// The SHA-256 of a document, as APQ names it.
pub fn hash(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

impl PersistedQueries {
    /// A store of at most `max_bytes` of document text.
    pub fn new(max_bytes: usize, gauge: Arc<CacheGauge>) -> Self {
        Self {
            docs: Mutex::new(ByteLru::new(gauge, max_bytes)),
            trusted: None,
        }
    }

    /// The trusted documents' hashes (trusted-documents mode only).
    pub fn trusted_hashes(&self) -> Option<std::collections::HashSet<String>> {
        self.trusted.as_ref().map(|t| t.keys().cloned().collect())
    }

    /// Trusted-documents mode with these documents (a JSON array of
    /// documents, or an object of hash to document as Apollo's manifests
    /// are written).
    pub fn trusted(manifest: &serde_json::Value) -> Result<Self, String> {
        let docs: Vec<String> = match manifest {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::Object(o) => o
                .values()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect(),
            _ => {
                return Err(
                    "a trusted-documents manifest is a JSON array or object of documents".into(),
                );
            }
        };
        Ok(Self {
            trusted: Some(docs.into_iter().map(|d| (hash(&d), d.into())).collect()),
            ..Self::default()
        })
    }

    fn known(&self, h: &str) -> Option<Arc<str>> {
        match &self.trusted {
            Some(t) => t.get(h).cloned(),
            None => self
                .docs
                .lock()
                .ok()
                .and_then(|mut d| d.get(&h.to_owned()).cloned()),
        }
    }

    /// Registers a document that ran (parsed, validated, within limits).
    pub fn register(&self, hash: String, document: &str) {
        if self.trusted.is_some() {
            return;
        }
        if let Ok(mut docs) = self.docs.lock() {
            docs.put(hash, document.into(), document.len() + 64);
        }
    }

    /// Fills in the document of a request that carries the extension, or
    /// says it should be registered once it ran; leaves other requests
    /// alone.
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<Resolved, ApqError> {
        let trusted_only = self.trusted.is_some();
        let Some(ext) = request.extensions.get("persistedQuery") else {
            if trusted_only && self.known(&hash(&request.query)).is_none() {
                return Err(ApqError::NotAllowed);
            }
            return Ok(Resolved::Nothing);
        };
        let ext = ext
            .clone()
            .into_json()
            .map_err(|_| ApqError::Invalid("Invalid persistedQuery extension."))?;
        if ext.get("version").and_then(serde_json::Value::as_i64) != Some(1) {
            return Err(ApqError::Invalid(
                "Only persistedQuery version 1 is supported.",
            ));
        }
        let hash = ext
            .get("sha256Hash")
            .and_then(serde_json::Value::as_str)
            .ok_or(ApqError::Invalid("persistedQuery needs a sha256Hash."))?
            .to_ascii_lowercase();
        if request.query.is_empty() {
            let unknown = if trusted_only {
                ApqError::NotAllowed
            } else {
                ApqError::NotFound
            };
            request.query = self.known(&hash).ok_or(unknown)?.to_string();
            return Ok(Resolved::Nothing);
        }
        if self::hash(&request.query) != hash {
            return Err(ApqError::Invalid("provided sha does not match query"));
        }
        if trusted_only {
            return self
                .known(&hash)
                .map(|_| Resolved::Nothing)
                .ok_or(ApqError::NotAllowed);
        }
        if self.known(&hash).is_some() {
            return Ok(Resolved::Nothing);
        }
        Ok(Resolved::Register(hash))
    }

    /// Bytes of document text held now.
    pub fn bytes(&self) -> usize {
        self.docs.lock().map(|d| d.bytes()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(query: &str, hash: &str) -> async_graphql::Request {
        let mut r = async_graphql::Request::new(query);
        r.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(serde_json::json!({"version": 1, "sha256Hash": hash}))
                .unwrap_or_default(),
        );
        r
    }

    #[test]
    fn register_then_use_by_hash() {
        let apq = PersistedQueries::default();
        let q = "{ me { id } }";
        let hash = hex::encode(Sha256::digest(q.as_bytes()));
        assert_eq!(
            apq.resolve(&mut with_hash("", &hash)),
            Err(ApqError::NotFound)
        );
        assert_eq!(
            apq.resolve(&mut with_hash(q, &hash)),
            Ok(Resolved::Register(hash.clone()))
        );
        assert_eq!(
            apq.resolve(&mut with_hash("", &hash)),
            Err(ApqError::NotFound),
            "not registered until it ran"
        );
        apq.register(hash.clone(), q);
        let mut by_hash = with_hash("", &hash);
        assert!(apq.resolve(&mut by_hash).is_ok());
        assert_eq!(by_hash.query, q);
        assert!(matches!(
            apq.resolve(&mut with_hash("{ x }", &hash)),
            Err(ApqError::Invalid(_))
        ));
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn the_store_stays_within_its_bytes() {
        let apq = PersistedQueries::new(10_000, Arc::default());
        for n in 0..1000 {
            let q = format!("{{ me {{ id }} }} # {n:0>200}");
            apq.register(hash(&q), &q);
        }
        assert!(apq.bytes() <= 10_000, "{}", apq.bytes());
    }
}
