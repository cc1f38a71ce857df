//! Automatic persisted queries (Apollo's protocol), over POST and GET.
//!
//! A client sends `extensions.persistedQuery = {version: 1, sha256Hash}`,
//! first without the document: printgate answers PERSISTED_QUERY_NOT_FOUND
//! until the client sends hash and document together, which registers it.
//! The document is restored here, at the HTTP edge, before anything else
//! looks at the request, so a GET that names a mutation by hash is still
//! refused. Registrations are per instance; a client whose hash another
//! instance does not know simply registers again.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Most documents kept; past it the store starts over.
const CAPACITY: usize = 10_000;

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
#[derive(Default)]
pub struct PersistedQueries {
    docs: Mutex<HashMap<String, String>>,
    /// Trusted-documents mode: only these documents run, and clients cannot
    /// register more.
    trusted_only: bool,
}

/// The SHA-256 of a document, as APQ names it.
pub fn hash(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

impl PersistedQueries {
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
            docs: Mutex::new(docs.into_iter().map(|d| (hash(&d), d)).collect()),
            trusted_only: true,
        })
    }

    fn known(&self, h: &str) -> Option<String> {
        self.docs.lock().ok().and_then(|d| d.get(h).cloned())
    }

    /// Fills in (or registers) the document of a request that carries the
    /// extension; leaves other requests alone.
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ApqError> {
        let Some(ext) = request.extensions.get("persistedQuery") else {
            if self.trusted_only && self.known(&hash(&request.query)).is_none() {
                return Err(ApqError::NotAllowed);
            }
            return Ok(());
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
            let unknown = if self.trusted_only {
                ApqError::NotAllowed
            } else {
                ApqError::NotFound
            };
            request.query = self.known(&hash).ok_or(unknown)?;
            return Ok(());
        }
        if self::hash(&request.query) != hash {
            return Err(ApqError::Invalid("provided sha does not match query"));
        }
        if self.trusted_only {
            return self.known(&hash).map(|_| ()).ok_or(ApqError::NotAllowed);
        }
        if let Ok(mut docs) = self.docs.lock() {
            if docs.len() >= CAPACITY {
                docs.clear();
            }
            docs.insert(hash, request.query.clone());
        }
        Ok(())
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
        assert!(apq.resolve(&mut with_hash(q, &hash)).is_ok());
        let mut by_hash = with_hash("", &hash);
        assert!(apq.resolve(&mut by_hash).is_ok());
        assert_eq!(by_hash.query, q);
        assert!(matches!(
            apq.resolve(&mut with_hash("{ x }", &hash)),
            Err(ApqError::Invalid(_))
        ));
    }
}
