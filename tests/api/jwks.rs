//! Tokens from a real identity provider's JWKS (a local server publishing
//! the keys in `fixtures/jwks/`): keys chosen by `kid` (RS256, ES256,
//! EdDSA), rotation without a restart, one refresh for an unknown `kid`,
//! foreign keys refused, the cached keys kept while the IdP is down, and
//! the claims mapping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures/jwks/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}")).unwrap()
}

/// A JWKS endpoint: serves `doc` (503 while it is `None`), counting fetches.
#[derive(Clone)]
struct Idp {
    url: String,
    doc: Arc<Mutex<Option<String>>>,
    fetches: Arc<AtomicU64>,
}

impl Idp {
    async fn start(doc: Option<&str>) -> Self {
        let doc = Arc::new(Mutex::new(doc.map(fixture)));
        let fetches = Arc::new(AtomicU64::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/realms/farm/protocol/openid-connect/certs",
            axum::routing::get(move || {
                let (d, f) = (d.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    match d.lock().unwrap().clone() {
                        Some(body) => axum::response::Response::builder()
                            .header("content-type", "application/json")
                            .header("cache-control", "public, max-age=600")
                            .body(axum::body::Body::from(body))
                            .unwrap(),
                        None => axum::response::Response::builder()
                            .status(503)
                            .body(axum::body::Body::empty())
                            .unwrap(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/realms/farm/protocol/openid-connect/certs",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, doc, fetches }
    }

    fn publish(&self, doc: Option<&str>) {
        *self.doc.lock().unwrap() = doc.map(fixture);
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A token signed by fixture key `pem` with `alg`, naming `kid`.
fn token(pem: &str, alg: Algorithm, kid: &str, claims: Value) -> String {
    let pem = fixture(pem);
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => unreachable!(),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = (!kid.is_empty()).then(|| kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "email": format!("{sub}@farm.example"), "exp": chrono::Utc::now().timestamp() + 600})
}

async fn app_for(idp: &Idp, adjust: impl FnOnce(&mut printgate::Config)) -> TestApp {
    let url = idp.url.clone();
    TestApp::spawn_with(None, move |c| {
        c.jwt.secret = None;
        c.jwt.jwks_url = Some(url);
        adjust(c);
    })
    .await
}

/// `me { email }` as the token's user, or the error's message.
async fn me(app: &TestApp, token: &str) -> Result<String, String> {
    let body = app.gql(Some(token), "{ me { email } }", json!({})).await;
    match body["data"]["me"]["email"].as_str() {
        Some(e) => Ok(e.to_owned()),
        None => Err(body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()),
    }
}

async fn ready(app: &TestApp) -> u16 {
    reqwest::get(format!("{}/readyz", app.url))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn keys_are_chosen_by_kid_and_a_rotation_needs_no_restart() {
    let idp = Idp::start(Some("set_a.json")).await;
    let app = app_for(&idp, |_| {}).await;
    let a = token("a_rs256.pem", Algorithm::RS256, "key-a", claims("alice"));
    assert_eq!(me(&app, &a).await.as_deref(), Ok("alice@farm.example"));
    let after_start = idp.fetches();
    assert_eq!(after_start, 1);
    assert_eq!(ready(&app).await, 200);

    // The IdP rotates in B (ES256) and C (EdDSA): one fetch, no restart.
    idp.publish(Some("set_abc.json"));
    let b = token("b_es256.pem", Algorithm::ES256, "key-b", claims("bob"));
    assert_eq!(me(&app, &b).await.as_deref(), Ok("bob@farm.example"));
    assert_eq!(idp.fetches(), 2, "an unknown kid fetched the document once");
    let c = token("c_eddsa.pem", Algorithm::EdDSA, "key-c", claims("carol"));
    assert_eq!(me(&app, &c).await.as_deref(), Ok("carol@farm.example"));
    assert_eq!(idp.fetches(), 2, "C was in the same document");

    // Another unknown kid right after: refused without another fetch.
    let z = token("a_rs256.pem", Algorithm::RS256, "key-z", claims("mallory"));
    assert!(me(&app, &z).await.unwrap_err().contains("unknown kid"));
    assert_eq!(idp.fetches(), 2, "at most one refresh every few seconds");

    // A key the IdP never published, under a published kid: refused.
    let d = token(
        "d_unpublished_rs256.pem",
        Algorithm::RS256,
        "key-a",
        claims("mallory"),
    );
    assert!(me(&app, &d).await.unwrap_err().contains("bad signature"));
    // A token naming no key: the published key of its algorithm verifies
    // it; an unpublished one does not.
    let no_kid = token("a_rs256.pem", Algorithm::RS256, "", claims("dave"));
    assert_eq!(me(&app, &no_kid).await.as_deref(), Ok("dave@farm.example"));
    let no_kid = token(
        "d_unpublished_rs256.pem",
        Algorithm::RS256,
        "",
        claims("mallory"),
    );
    assert!(me(&app, &no_kid).await.is_err());
    // The encryption key is never a verification key.
    let e = token(
        "a_rs256.pem",
        Algorithm::RS256,
        "key-enc",
        claims("mallory"),
    );
    assert!(me(&app, &e).await.is_err());
    // An HS256 token using a published key's kid: refused.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-a".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert!(me(&app, &hs).await.unwrap_err().contains("algorithm"));
    assert_eq!(
        app.user_rows().await,
        4,
        "only alice, bob, carol and dave exist"
    );
}

#[tokio::test]
async fn an_idp_down_at_start_is_waited_for_and_while_down_cached_keys_work() {
    let idp = Idp::start(None).await;
    let app = app_for(&idp, |_| {}).await;
    // Start-up did not fail; readiness says what is missing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ready(&app).await, 503);
    let a = token("a_rs256.pem", Algorithm::RS256, "key-a", claims("alice"));
    assert!(me(&app, &a).await.is_err());
    // The IdP comes back: the next token with a kid not yet known fetches.
    idp.publish(Some("set_a.json"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(me(&app, &a).await.as_deref(), Ok("alice@farm.example"));
    assert_eq!(ready(&app).await, 200);
    // Down again: the cached key goes on working.
    idp.publish(None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(me(&app, &a).await.as_deref(), Ok("alice@farm.example"));
    let b = token("b_es256.pem", Algorithm::ES256, "key-b", claims("bob"));
    assert!(
        me(&app, &b).await.is_err(),
        "a key never fetched cannot verify"
    );
    assert_eq!(me(&app, &a).await.as_deref(), Ok("alice@farm.example"));
}

#[tokio::test]
async fn the_user_and_email_claims_and_the_issuer_are_configurable() {
    let idp = Idp::start(Some("set_a.json")).await;
    let app = app_for(&idp, |c| {
        c.jwt.claims.user = "preferred_username".into();
        c.jwt.claims.email = "mail".into();
        c.jwt.issuer = Some("https://idp.farm.example/realms/farm".into());
    })
    .await;
    let exp = chrono::Utc::now().timestamp() + 600;
    let iss = "https://idp.farm.example/realms/farm";
    let good = token(
        "a_rs256.pem",
        Algorithm::RS256,
        "key-a",
        json!({"preferred_username": "kc-alice", "mail": "alice@kc.example", "exp": exp, "iss": iss}),
    );
    assert_eq!(me(&app, &good).await.as_deref(), Ok("alice@kc.example"));
    let stored = entity::user::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(stored[0].sub, "kc-alice");
    let no_user = token(
        "a_rs256.pem",
        Algorithm::RS256,
        "key-a",
        json!({"sub": "x", "exp": exp, "iss": iss}),
    );
    assert!(
        me(&app, &no_user)
            .await
            .unwrap_err()
            .contains("preferred_username")
    );
    let wrong_iss = token(
        "a_rs256.pem",
        Algorithm::RS256,
        "key-a",
        json!({"preferred_username": "kc-bob", "exp": exp, "iss": "https://evil.example"}),
    );
    assert!(me(&app, &wrong_iss).await.unwrap_err().contains("issuer"));
}

use sea_orm::EntityTrait;

#[tokio::test]
async fn a_secret_beside_the_idp_keeps_minted_tokens_working() {
    let idp = Idp::start(Some("set_a.json")).await;
    let url = idp.url.clone();
    let app = TestApp::spawn_with(None, move |c| c.jwt.jwks_url = Some(url)).await;
    let minted = app
        .keys
        .mint("operator", Some("op@farm.example"), Duration::from_secs(60))
        .unwrap();
    assert_eq!(me(&app, &minted).await.as_deref(), Ok("op@farm.example"));
    let a = token("a_rs256.pem", Algorithm::RS256, "key-a", claims("alice"));
    assert_eq!(me(&app, &a).await.as_deref(), Ok("alice@farm.example"));
    let forged = printgate::auth::JwtKeys::from_secret(b"not the secret")
        .mint("mallory", None, Duration::from_secs(60))
        .unwrap();
    assert!(
        me(&app, &forged)
            .await
            .unwrap_err()
            .contains("bad signature")
    );
}
