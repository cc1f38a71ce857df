//! API keys: long-lived credentials for scripts and legacy clients.
//!
//! A key is `pgk_` and 43 random characters, shown once; the database keeps
//! its SHA-256 only, so a leaked database leaks no key. Verifying a key
//! reads its row (kept in memory for at most [`KEY_TTL`], so a revocation
//! on any instance holds everywhere within that time, and at once on the
//! instance that revoked it). Keys are managed only in person (a session
//! JWT): a key cannot create, list or revoke keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use entity::api_key;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use sha2::Digest;

use super::{Credential, Service, Viewer, bump_version, now, rules};
use crate::error::{AppError, code};

/// What every key starts with: recognisable in logs and by secret scanners.
pub const KEY_PREFIX: &str = "pgk_";
/// How many of a key's characters are kept to tell keys apart.
const SHOWN_CHARS: usize = 12;
/// Longest a verified key is trusted without reading its row again.
pub const KEY_TTL: Duration = Duration::from_secs(1);
/// Least time between two writes of a key's `last_used_at`.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);
/// Most keys kept verified in memory; past it the map starts over.
const KEY_CACHE_CAPACITY: usize = 10_000;
/// Longest key name.
const NAME_MAX_CHARS: usize = 100;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyScope {
    /// Queries and subscriptions only.
    Read,
    /// Everything a session may do except managing keys and webhooks.
    Write,
}

impl ApiKeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "WRITE" {
            Self::Write
        } else {
            Self::Read
        }
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub scope: ApiKeyScope,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who a verified key acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrincipal {
    pub key_id: i32,
    pub user_id: i32,
    /// The owner's `sub`, for per-user counts.
    pub sub: Arc<str>,
    pub write: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Verified keys by hash: (when read, the principal, when it expires).
#[derive(Default)]
pub(super) struct KeyCache {
    verified: Mutex<HashMap<String, (Instant, KeyPrincipal)>>,
    last_used: Mutex<HashMap<i32, Instant>>,
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Whether a credential looks like an API key (and not a JWT).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

fn refused() -> AppError {
    AppError::Unauthenticated("Invalid API key.".into())
}

impl Service {
    /// Creates a key for the viewer; returns its row and the key itself
    /// (shown once).
    pub async fn create_api_key(
        &self,
        viewer: &Viewer,
        new: NewApiKey,
    ) -> Result<(api_key::Model, String), AppError> {
        viewer.in_person()?;
        let mut c = crate::error::Checks::default();
        let name = c.check(rules::valid_text("name", &new.name, NAME_MAX_CHARS));
        if new.expires_at.is_some_and(|at| at <= Utc::now()) {
            c.refuse("expires_at", "Must be in the future.");
        }
        c.finish()?;
        let Some(name) = name else {
            return Err(AppError::internal("checked input vanished"));
        };
        let key = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let txn = self.db().begin().await?;
        // The row lock of the version bump serialises one user's
        // creations on PostgreSQL, so the cap holds under concurrency.
        bump_version(&txn, viewer.id()).await?;
        let live = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(viewer.id()))
            .filter(api_key::Column::RevokedAt.is_null())
            .count(&txn)
            .await?;
        let cap = self.limits.max_api_keys_per_user;
        if live >= cap {
            return Err(AppError::LimitReached {
                code: code::API_KEY_LIMIT_REACHED,
                message: format!("A user may have at most {cap} API keys; revoke one first."),
                limit: cap,
            });
        }
        let row = api_key::ActiveModel {
            user_id: Set(viewer.id()),
            name: Set(name),
            scope: Set(new.scope.as_str().to_owned()),
            prefix: Set(key.chars().take(SHOWN_CHARS).collect()),
            key_hash: Set(hash_key(&key)),
            created_at: Set(now()),
            last_used_at: Set(None),
            expires_at: Set(new.expires_at),
            revoked_at: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        self.integration_changed(viewer.id());
        Ok((row, key))
    }

    /// The viewer's keys, newest first (revoked ones too, marked so).
    pub async fn api_keys(&self, viewer: &Viewer) -> Result<Vec<api_key::Model>, AppError> {
        viewer.in_person()?;
        Ok(api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(viewer.id()))
            .order_by_desc(api_key::Column::Id)
            .all(self.db())
            .await?)
    }

    /// Revokes one of the viewer's keys: refused from then on, on this
    /// instance at once and on every other within [`KEY_TTL`].
    pub async fn revoke_api_key(
        &self,
        viewer: &Viewer,
        id: i32,
    ) -> Result<Option<api_key::Model>, AppError> {
        viewer.in_person()?;
        let Some(row) = api_key::Entity::find_by_id(id)
            .filter(api_key::Column::UserId.eq(viewer.id()))
            .one(self.db())
            .await?
        else {
            return Ok(None);
        };
        if row.revoked_at.is_some() {
            return Ok(Some(row));
        }
        let mut active: api_key::ActiveModel = row.clone().into();
        active.revoked_at = Set(Some(now()));
        let txn = self.db().begin().await?;
        bump_version(&txn, viewer.id()).await?;
        let row = active.update(&txn).await?;
        txn.commit().await?;
        self.integration_changed(viewer.id());
        if let Ok(mut c) = self.keys.verified.lock() {
            c.retain(|_, (_, p)| p.key_id != id);
        }
        Ok(Some(row))
    }

    /// Verifies an API key; the error is safe to show its sender.
    pub async fn authenticate_key(&self, key: &str) -> Result<KeyPrincipal, AppError> {
        if !is_api_key(key) || key.len() > 200 {
            return Err(refused());
        }
        let hash = hash_key(key);
        let cached = self.keys.verified.lock().ok().and_then(|c| {
            c.get(&hash)
                .filter(|(at, _)| at.elapsed() < KEY_TTL)
                .map(|(_, p)| p.clone())
        });
        let principal = match cached {
            Some(hit) => hit,
            None => {
                let row = api_key::Entity::find()
                    .filter(api_key::Column::KeyHash.eq(hash.as_str()))
                    .one(self.db())
                    .await?;
                let Some(row) = row.filter(|r| r.revoked_at.is_none()) else {
                    return Err(refused());
                };
                let owner = entity::user::Entity::find_by_id(row.user_id)
                    .one(self.db())
                    .await?
                    .ok_or_else(refused)?;
                let principal = KeyPrincipal {
                    key_id: row.id,
                    user_id: row.user_id,
                    sub: owner.sub.into(),
                    write: ApiKeyScope::parse(&row.scope) == ApiKeyScope::Write,
                    expires_at: row.expires_at,
                };
                if let Ok(mut c) = self.keys.verified.lock() {
                    if c.len() >= KEY_CACHE_CAPACITY {
                        c.clear();
                    }
                    c.insert(hash, (Instant::now(), principal.clone()));
                }
                principal
            }
        };
        if principal.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AppError::Unauthenticated(
                "This API key has expired.".into(),
            ));
        }
        self.touch_key(principal.key_id).await;
        Ok(principal)
    }

    /// Records that a key was used, at most once a minute per key per
    /// instance (a write per request would put every read behind the
    /// database's writer).
    async fn touch_key(&self, id: i32) {
        let due = self.keys.last_used.lock().is_ok_and(|mut m| {
            if m.len() >= KEY_CACHE_CAPACITY {
                m.clear();
            }
            let due = m.get(&id).is_none_or(|at| at.elapsed() >= LAST_USED_EVERY);
            if due {
                m.insert(id, Instant::now());
            }
            due
        });
        if due {
            let write = api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, now().into())
                .filter(api_key::Column::Id.eq(id))
                .exec(self.db())
                .await;
            if let Err(e) = write {
                AppError::from(e).log();
            }
        }
    }

    /// The viewer a verified key acts for.
    pub async fn key_viewer(&self, principal: &KeyPrincipal) -> Result<Viewer, AppError> {
        let user = entity::user::Entity::find_by_id(principal.user_id)
            .one(self.db())
            .await?
            .ok_or_else(refused)?;
        Ok(Viewer {
            user,
            via: Credential::ApiKey {
                id: principal.key_id,
                write: principal.write,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_told_from_tokens_and_hashed_one_way() {
        assert!(is_api_key("pgk_abc"));
        assert!(!is_api_key("eyJhbGciOi.x.y"));
        let h = hash_key("pgk_abc");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("abc"));
        assert_eq!(h, hash_key("pgk_abc"));
        assert_ne!(h, hash_key("pgk_abd"));
    }
}
