//! Authentication: a bearer JWT or an API key in, a verified identity out.
//!
//! Keys are loaded once at start-up into [`JwtKeys`]; each request's
//! `Authorization` (or `X-Api-Key`) header is checked once, at the edge, by
//! the [`Authenticator`] into an [`Identity`]. Which user a token names
//! (just-in-time provisioning) and what a key may do are the service
//! layer's business, not this module's.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;
use crate::service::{KeyPrincipal, Service};

/// Shortest HS256 secret accepted in production.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims printgate reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Names the user; users are created on first sight of a `sub`.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Expiry (unix seconds); required, checked by the validation (an
    /// `Option` here so a missing one is reported as such, not as garbage).
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// Who sent a request, as far as its credentials say.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No `Authorization` header at all.
    Anonymous,
    /// A header that did not verify; the text says why, for the client.
    Rejected(String),
    /// A verified token.
    Verified(Claims),
    /// A verified API key.
    Key(KeyPrincipal),
}

impl Identity {
    /// The user an identity names, for per-user counts (subscriptions):
    /// a token's `sub`, a key's owner's.
    pub fn sub(&self) -> Option<&str> {
        match self {
            Self::Verified(c) => Some(&c.sub),
            Self::Key(k) => Some(&k.sub),
            Self::Anonymous | Self::Rejected(_) => None,
        }
    }

    /// When the credential stops being valid (unix seconds), if it does.
    pub fn expires(&self) -> Option<i64> {
        match self {
            Self::Verified(c) => c.exp,
            Self::Key(k) => k.expires_at.map(|t| t.timestamp()),
            Self::Anonymous | Self::Rejected(_) => None,
        }
    }
}

/// Turns credentials into identities: JWTs by [`JwtKeys`], API keys by
/// the service (they live in the database).
pub struct Authenticator {
    pub jwt: Arc<JwtKeys>,
    service: Service,
}

impl Authenticator {
    pub fn new(jwt: Arc<JwtKeys>, service: Service) -> Self {
        Self { jwt, service }
    }

    /// The identity of a request's `Authorization` and `X-Api-Key` header
    /// values. An `X-Api-Key` wins; a bearer credential starting `pgk_` is
    /// a key too (what legacy Obico clients send), anything else a JWT.
    pub async fn identify(&self, authorization: Option<&str>, api_key: Option<&str>) -> Identity {
        let key = match api_key {
            Some(k) => Some(k.trim()),
            // `Token <key>` is how Obico's own REST clients send theirs.
            None => authorization
                .and_then(|v| bearer_token(v).or_else(|| token_scheme(v)))
                .filter(|t| crate::service::is_api_key(t)),
        };
        if let Some(key) = key {
            return match self.service.authenticate_key(key).await {
                Ok(principal) => Identity::Key(principal),
                Err(e) => Identity::Rejected(e.client_message()),
            };
        }
        self.jwt.identify(authorization).await
    }
}

/// The verification (and, for HS256, signing) keys, with an explicit
/// [`Validation`] so no algorithm is accepted by default.
pub struct JwtKeys {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    /// The identity provider's keys, when they come from a JWKS URL.
    jwks: Option<Arc<Jwks>>,
    claims: crate::config::ClaimNames,
    /// A key for signing snapshot URLs: derived from the HS256 secret (so
    /// every instance sharing the secret agrees), else random per process.
    url_key: Vec<u8>,
    verified: Verified,
}

/// Most tokens kept as verified.
const VERIFIED_TOKENS: usize = 4096;
/// Longest a token is trusted without checking its signature again (a key
/// withdrawn from the identity provider's JWKS stops working within it).
const VERIFIED_TTL: Duration = Duration::from_secs(30);
/// Longer tokens are verified every time, never kept.
const VERIFIED_MAX_LEN: usize = 4096;

/// Tokens that verified lately, by their exact text: a client sends the
/// same token with every request, and decoding it and checking its
/// signature again was a tenth of a cached read's time. Only a token that
/// verified is kept (junk costs its sender a verification each time and
/// takes no room), until the earlier of [`VERIFIED_TTL`] and its expiry
/// (with the validation's leeway, as the validation itself would allow);
/// bounded by count, least recently used first.
struct Verified(Mutex<lru::LruCache<Box<str>, (Claims, i64, Instant)>>);

impl Default for Verified {
    fn default() -> Self {
        Self(Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(VERIFIED_TOKENS).unwrap_or(NonZeroUsize::MIN),
        )))
    }
}

impl Verified {
    fn get(&self, token: &str) -> Option<Claims> {
        let mut kept = self.0.lock().ok()?;
        let (claims, until, at) = kept.get(token)?;
        if chrono::Utc::now().timestamp() <= *until && at.elapsed() < VERIFIED_TTL {
            return Some(claims.clone());
        }
        kept.pop(token);
        None
    }

    fn put(&self, token: &str, claims: &Claims, leeway: u64) {
        let Some(exp) = claims.exp else { return };
        if token.len() > VERIFIED_MAX_LEN {
            return;
        }
        let until = exp.saturating_add(i64::try_from(leeway).unwrap_or(i64::MAX));
        if let Ok(mut kept) = self.0.lock() {
            kept.put(token.into(), (claims.clone(), until, Instant::now()));
        }
    }
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// Why keys could not be set up; fatal at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds neither an RSA nor an EC public key in PEM form")]
    BadPublicKey { path: PathBuf },
    #[error(
        "PRINTGATE_JWT_SECRET is required in production (PRINTGATE_ENV=production); no development secret is generated"
    )]
    SecretRequired,
    #[error(
        "PRINTGATE_JWT_SECRET must be at least 32 bytes in production (HS256 needs a key as long as its hash)"
    )]
    SecretTooShort,
    #[error(
        "PRINTGATE_URL_SIGNING_SECRET is required in production with PRINTGATE_JWT_PUBLIC_KEY: every instance must sign snapshot links with the same key"
    )]
    UrlSecretRequired,
    #[error("tokens can only be minted with the HS256 secret, not with a public key")]
    CannotSign,
    #[error("signing failed: {0}")]
    Signing(String),
}

impl JwtKeys {
    /// Builds the keys from configuration. With neither a secret nor a public
    /// key configured, a development secret is read from (or created in)
    /// `dev_secret_path`.
    pub fn load(config: &JwtConfig) -> Result<Self, KeyError> {
        let mut keys = if let Some(url) = &config.jwks_url {
            // A secret configured beside the IdP keeps `printgate token`'s
            // HS256 tokens working (an operator's, for scripts).
            let mut k = match &config.secret {
                Some(s) if config.production && s.len() < MIN_SECRET_BYTES => {
                    return Err(KeyError::SecretTooShort);
                }
                Some(s) => Self::from_secret(s.as_bytes()),
                None => Self {
                    // Unused: every token is checked with its `kid`'s key.
                    decoding: DecodingKey::from_secret(&rand::random::<[u8; 32]>()),
                    encoding: None,
                    validation: Validation::new(Algorithm::RS256),
                    jwks: None,
                    claims: Default::default(),
                    url_key: rand::random::<[u8; 32]>().to_vec(),
                    verified: Verified::default(),
                },
            };
            k.jwks = Some(Jwks::start(url));
            k
        } else if let Some(path) = &config.public_key {
            let pem = std::fs::read(path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?;
            let (decoding, alg) = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                (k, Algorithm::RS256)
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                (k, Algorithm::ES256)
            } else {
                return Err(KeyError::BadPublicKey { path: path.clone() });
            };
            Self {
                decoding,
                encoding: None,
                validation: Validation::new(alg),
                jwks: None,
                claims: Default::default(),
                url_key: rand::random::<[u8; 32]>().to_vec(),
                verified: Verified::default(),
            }
        } else {
            let secret = match &config.secret {
                Some(s) if config.production && s.len() < MIN_SECRET_BYTES => {
                    return Err(KeyError::SecretTooShort);
                }
                Some(s) => s.clone().into_bytes(),
                None if config.production => return Err(KeyError::SecretRequired),
                None => dev_secret(&config.dev_secret_path)?,
            };
            Self::from_secret(&secret)
        };
        // What is configured is required: a token without the claim is
        // refused, not waved through.
        keys.claims = config.claims.clone();
        let mut required = vec!["exp"];
        // The user claim is checked by name below; `sub` is also a
        // registered claim jsonwebtoken can require itself.
        if keys.claims.user == "sub" {
            required.push("sub");
        }
        if let Some(iss) = &config.issuer {
            keys.validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &config.audience {
            keys.validation.set_audience(&[aud]);
            required.push("aud");
        }
        keys.validation.set_required_spec_claims(&required);
        keys.validation.validate_nbf = true;
        if let Some(secret) = &config.url_secret {
            keys.url_key = derive_key(secret.as_bytes(), b"printgate snapshot urls");
        } else if config.public_key.is_some()
            || (config.jwks_url.is_some() && config.secret.is_none())
        {
            // Verifying keys cannot sign: without a shared secret the URL
            // key is this process's own, and links fail on other instances
            // and after a restart.
            if config.production {
                return Err(KeyError::UrlSecretRequired);
            }
            tracing::warn!(
                "no PRINTGATE_URL_SIGNING_SECRET: snapshot links are signed with a per-process key (they fail on other instances and after a restart)"
            );
        }
        Ok(keys)
    }

    /// HS256 keys from a shared secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            validation,
            jwks: None,
            claims: Default::default(),
            url_key: derive_key(secret, b"printgate snapshot urls"),
            verified: Verified::default(),
        }
    }

    /// The key snapshot URLs are signed with.
    pub fn url_key(&self) -> &[u8] {
        &self.url_key
    }

    /// The JWKS source, when tokens are verified with one.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Verifies a token; the error text is safe to show to its sender.
    pub async fn verify(&self, token: &str) -> Result<Claims, String> {
        if let Some(claims) = self.verified.get(token) {
            return Ok(claims);
        }
        let claims = self.verify_signed(token).await?;
        self.verified.put(token, &claims, self.validation.leeway);
        Ok(claims)
    }

    /// [`JwtKeys::verify`] without what was verified lately.
    async fn verify_signed(&self, token: &str) -> Result<Claims, String> {
        let Some(jwks) = &self.jwks else {
            return self.verify_with(token, &self.decoding, &self.validation);
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| "Invalid token.".to_owned())?;
        if header.alg == Algorithm::HS256 {
            // Only by a configured secret, never by a published key.
            return match self.encoding {
                Some(_) => self.verify_with(token, &self.decoding, &self.validation),
                None => Err("Invalid token: algorithm not accepted.".into()),
            };
        }
        let Some(kid) = header.kid else {
            // A token naming no key: any published key of its algorithm
            // that verifies it (IdPs with one key often leave `kid` out).
            let mut validation = self.validation.clone();
            validation.algorithms = vec![header.alg];
            let mut last = Err("Invalid token: no published key of its algorithm.".to_owned());
            for key in jwks.keys_for(header.alg) {
                last = self.verify_with(token, &key, &validation);
                if last.is_ok() {
                    break;
                }
            }
            return last;
        };
        let key = match jwks.key(&kid) {
            Some(k) => k,
            None => {
                // A key the IdP has just rotated in: look once more (at
                // most every few seconds, however many tokens ask).
                jwks.refresh_for(&kid).await;
                jwks.key(&kid).ok_or_else(|| {
                    "Invalid token: signed by a key the identity provider does not publish (unknown kid)."
                        .to_owned()
                })?
            }
        };
        if header.alg != key.1 {
            return Err("Invalid token: algorithm not accepted.".into());
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.1];
        self.verify_with(token, &key.0, &validation)
    }

    fn verify_with(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<Claims, String> {
        match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token, key, validation,
        ) {
            Ok(data) => claims_of(&data.claims, &self.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => "Token has expired.".into(),
                ErrorKind::InvalidSignature => "Invalid token: bad signature.".into(),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "Invalid token: algorithm not accepted.".into()
                }
                ErrorKind::MissingRequiredClaim(c) => format!("Invalid token: missing {c} claim."),
                ErrorKind::InvalidIssuer => "Invalid token: wrong issuer.".into(),
                ErrorKind::InvalidAudience => "Invalid token: wrong audience.".into(),
                ErrorKind::ImmatureSignature => "Invalid token: not valid yet (nbf).".into(),
                _ => "Invalid token.".into(),
            }),
        }
    }

    /// Mints a token for `sub` valid for `ttl` (HS256 only).
    pub fn mint(&self, sub: &str, email: Option<&str>, ttl: Duration) -> Result<String, KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::CannotSign)?;
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: sub.to_owned(),
            email: email.map(str::to_owned),
            exp: Some(now.saturating_add(ttl)),
            iat: Some(now),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// Reads the `Authorization` header value into an [`Identity`].
    pub async fn identify(&self, authorization: Option<&str>) -> Identity {
        let Some(value) = authorization else {
            return Identity::Anonymous;
        };
        let Some(token) = bearer_token(value) else {
            return Identity::Rejected(
                "Invalid Authorization header: expected \"Bearer <token>\".".into(),
            );
        };
        match self.verify(token).await {
            Ok(claims) => Identity::Verified(claims),
            Err(why) => Identity::Rejected(why),
        }
    }
}

/// The `Authorization` and `X-Api-Key` header values of a request (a value
/// that is not text is kept as one that cannot verify).
pub fn credentials(headers: &axum::http::HeaderMap) -> (Option<&str>, Option<&str>) {
    fn text(v: &axum::http::HeaderValue) -> &str {
        v.to_str().unwrap_or("\u{0}")
    }
    (
        headers.get(axum::http::header::AUTHORIZATION).map(text),
        headers.get(API_KEY_HEADER).map(text),
    )
}

/// The header legacy Obico clients and scripts send their key in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The claims printgate uses, read from the configured claim names (a
/// numeric user id is taken as its decimal text).
fn claims_of(
    map: &serde_json::Map<String, serde_json::Value>,
    names: &crate::config::ClaimNames,
) -> Result<Claims, String> {
    use serde_json::Value;
    let sub = match map.get(&names.user) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(_)) => {
            return Err(format!("Invalid token: empty {} claim.", names.user));
        }
        _ => return Err(format!("Invalid token: missing {} claim.", names.user)),
    };
    Ok(Claims {
        sub,
        email: map
            .get(&names.email)
            .and_then(Value::as_str)
            .map(str::to_owned),
        exp: map.get("exp").and_then(Value::as_i64),
        iat: map.get("iat").and_then(Value::as_i64),
    })
}

/// Least time between two fetches of the JWKS document for unknown `kid`s.
pub const JWKS_MIN_REFRESH: Duration = Duration::from_secs(5);
/// How long a document without cache headers is kept.
const JWKS_DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The bounds on what cache headers may ask.
const JWKS_TTL_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 3600));
/// After a failed fetch, the next try.
const JWKS_RETRY: Duration = Duration::from_secs(30);
/// Most keys kept from one document.
const JWKS_MAX_KEYS: usize = 100;

/// An identity provider's published signing keys, by `kid`: fetched at
/// start (in the background: an unreachable IdP does not stop start-up),
/// again when the document's cache time ends, and when a token names an
/// unknown `kid` (at most every [`JWKS_MIN_REFRESH`]). A failed fetch
/// keeps the keys there were.
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: std::sync::RwLock<std::collections::HashMap<String, (DecodingKey, Algorithm)>>,
    /// When the document was last fetched successfully, and the last
    /// failure since.
    status: std::sync::Mutex<JwksStatus>,
    /// One fetch at a time; holds when the last fetch for an unknown
    /// `kid` started (scheduled fetches do not count: a rotation right
    /// after one is still picked up).
    fetching: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// What readiness reports of the JWKS.
#[derive(Debug, Clone, Default)]
pub struct JwksStatus {
    pub loaded_at: Option<chrono::DateTime<chrono::Utc>>,
    pub keys: usize,
    pub fetches: u64,
    pub last_error: Option<String>,
}

impl Jwks {
    /// Starts fetching `url` (the first fetch and the refreshes run on a
    /// background task when a runtime is there).
    pub fn start(url: &str) -> Arc<Self> {
        let jwks = Arc::new(Self {
            url: url.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: Default::default(),
            status: Default::default(),
            fetching: tokio::sync::Mutex::new(None),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&jwks);
            rt.spawn(async move {
                loop {
                    let Some(j) = weak.upgrade() else { return };
                    let wait = j.fetch().await;
                    drop(j);
                    tokio::time::sleep(wait).await;
                }
            });
        }
        jwks
    }

    /// The key a `kid` names and its algorithm.
    fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    /// Every key of algorithm `alg`.
    fn keys_for(&self, alg: Algorithm) -> Vec<DecodingKey> {
        self.keys.read().map_or_else(
            |_| Vec::new(),
            |k| {
                k.values()
                    .filter(|(_, a)| *a == alg)
                    .map(|(key, _)| key.clone())
                    .collect()
            },
        )
    }

    pub fn status(&self) -> JwksStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Fetches again for an unknown `kid`, unless a fetch started less
    /// than [`JWKS_MIN_REFRESH`] ago (then waits for that one).
    async fn refresh_for(&self, kid: &str) {
        let mut last = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if last.is_some_and(|at| at.elapsed() < JWKS_MIN_REFRESH) || self.key(kid).is_some() {
            return;
        }
        *last = Some(std::time::Instant::now());
        self.fetch_locked().await;
    }

    /// One scheduled fetch; returns how long until the next one is due.
    async fn fetch(&self) -> Duration {
        let _one_at_a_time = self.fetching.lock().await;
        self.fetch_locked().await
    }

    /// A fetch, with the fetch lock held by the caller.
    async fn fetch_locked(&self) -> Duration {
        let result = self.download().await;
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.fetches += 1;
        match result {
            Ok((keys, ttl)) => {
                status.keys = keys.len();
                status.loaded_at = Some(chrono::Utc::now());
                status.last_error = None;
                if let Ok(mut k) = self.keys.write() {
                    *k = keys;
                }
                ttl
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "could not fetch the JWKS; keeping the keys there were");
                status.last_error = Some(why);
                JWKS_RETRY
            }
        }
    }

    async fn download(
        &self,
    ) -> Result<
        (
            std::collections::HashMap<String, (DecodingKey, Algorithm)>,
            Duration,
        ),
        String,
    > {
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        if !resp.status().is_success() {
            return Err(format!("the JWKS URL answered {}", resp.status()));
        }
        let ttl = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(JWKS_DEFAULT_TTL)
            .clamp(JWKS_TTL_BOUNDS.0, JWKS_TTL_BOUNDS.1);
        let doc: serde_json::Value = resp.json().await.map_err(|e| format!("{e}"))?;
        let mut keys = std::collections::HashMap::new();
        for raw in doc["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .take(JWKS_MAX_KEYS)
        {
            // One key printgate cannot use (an encryption key, an
            // unknown type) does not spoil the others.
            let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(raw.clone()) else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            let Some(alg) = jwk_algorithm(&jwk) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            // A key without a `kid` is kept under a name no token can
            // give, for tokens that name none.
            let kid = jwk
                .common
                .key_id
                .clone()
                .unwrap_or_else(|| format!("\u{0}unnamed {}", keys.len()));
            keys.insert(kid, (key, alg));
        }
        if keys.is_empty() {
            return Err("the JWKS document holds no usable signing key".into());
        }
        Ok((keys, ttl))
    }
}

/// The algorithm a published key verifies: its `alg`, else what its type
/// implies. Symmetric keys are never taken from a JWKS.
fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve as C};
    let implied = match &jwk.algorithm {
        P::RSA(_) => Algorithm::RS256,
        P::EllipticCurve(ec) if ec.curve == C::P256 => Algorithm::ES256,
        P::EllipticCurve(ec) if ec.curve == C::P384 => Algorithm::ES384,
        P::OctetKeyPair(okp) if okp.curve == C::Ed25519 => Algorithm::EdDSA,
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        Some(k) => Algorithm::try_from(k).ok()?,
        None => implied,
    };
    let family = |a: Algorithm| match a {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => 1,
        Algorithm::ES256 | Algorithm::ES384 => 2,
        Algorithm::EdDSA => 3,
        _ => 0,
    };
    (family(alg) == family(implied) && family(alg) != 0).then_some(alg)
}

/// The `max-age` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.eq_ignore_ascii_case("max-age")
            .then(|| v.trim().parse().ok().map(Duration::from_secs))
            .flatten()
    })
}

/// A key for another purpose, derived from the secret with HMAC-SHA256.
fn derive_key(secret: &[u8], purpose: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    match Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(purpose);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => rand::random::<[u8; 32]>().to_vec(),
    }
}

/// The credential of a `Token <key>` header value (scheme in any case).
fn token_scheme(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("token") && !token.is_empty()).then_some(token)
}

/// The token of a `Bearer <token>` header value (scheme in any case).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    // (A bare key without the scheme is not accepted: ambiguous.)
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reads the development secret, creating it (owner-only) when missing.
fn dev_secret(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => {
            tracing::warn!(path = %path.display(), "using the development JWT secret; set PRINTGATE_JWT_SECRET for anything else");
            return Ok(s.trim().as_bytes().to_vec());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_owner_only(path, &secret).map_err(io)?;
    tracing::warn!(path = %path.display(), "generated a development JWT secret; set PRINTGATE_JWT_SECRET for anything else");
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_owner_only(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_owner_only(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Token abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[tokio::test]
    async fn minted_tokens_verify_and_foreign_ones_do_not() {
        let keys = JwtKeys::from_secret(b"one");
        let other = JwtKeys::from_secret(b"two");
        let token = keys
            .mint("alice", Some("a@example.com"), Duration::from_secs(60))
            .unwrap_or_default();
        let claims = keys.verify(&token).await;
        assert_eq!(claims.map(|c| c.sub).ok().as_deref(), Some("alice"));
        assert_eq!(
            other.verify(&token).await.err().as_deref(),
            Some("Invalid token: bad signature.")
        );
    }

    #[tokio::test]
    async fn a_token_kept_as_verified_still_expires_and_the_kept_ones_are_bounded() {
        let mut keys = JwtKeys::from_secret(b"one");
        keys.validation.leeway = 0;
        let token = keys
            .mint("alice", None, Duration::from_secs(1))
            .unwrap_or_default();
        assert!(keys.verify(&token).await.is_ok());
        assert!(keys.verify(&token).await.is_ok(), "answered as kept");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(
            keys.verify(&token).await.err().as_deref(),
            Some("Token has expired.")
        );
        // Junk is never kept; valid tokens up to the bound.
        for i in 0..10 {
            assert!(keys.verify(&format!("junk{i}")).await.is_err());
        }
        assert_eq!(keys.verified.0.lock().map(|k| k.len()).unwrap_or(1), 0);
        for i in 0..(VERIFIED_TOKENS + 10) {
            let t = keys
                .mint(&format!("u{i}"), None, Duration::from_secs(60))
                .unwrap_or_default();
            assert!(keys.verify(&t).await.is_ok());
        }
        let kept = keys.verified.0.lock().map(|k| k.len()).unwrap_or(0);
        assert_eq!(kept, VERIFIED_TOKENS);
    }

    #[test]
    fn cache_control_max_age_is_read() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-cache"), None);
    }

    #[test]
    fn dev_secret_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("secret");
        let a = dev_secret(&path).unwrap_or_default();
        let b = dev_secret(&path).unwrap_or_default();
        assert!(!a.is_empty());
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
