//! Authentication: every way a token can be wrong is refused with
//! UNAUTHENTICATED, and a refused request writes nothing.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, error_code};

const LIST: &str = "{ printers { id } }";

async fn refused_with(app: &TestApp, authorization: &str) -> Value {
    let resp = app
        .client
        .post(format!("{}/graphql", app.url))
        .header("authorization", authorization)
        .json(&json!({"query": LIST}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert!(body["data"].is_null(), "{body}");
    body
}

fn signed(claims: Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_request_without_a_token_is_unauthenticated_and_creates_no_user() {
    let app = TestApp::spawn().await;
    let body = app.gql(None, LIST, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(
        body["errors"][0]["message"],
        "Authentication credentials were not provided."
    );
    assert_eq!(app.user_rows().await, 0);
}

#[tokio::test]
async fn expired_badly_signed_and_malformed_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let expired = signed(
        json!({"sub": "alice", "exp": now() - 3600}),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    let body = refused_with(&app, &format!("Bearer {expired}")).await;
    assert_eq!(body["errors"][0]["message"], "Token has expired.");

    let foreign = signed(
        json!({"sub": "alice", "exp": now() + 3600}),
        Algorithm::HS256,
        b"another secret",
    );
    let body = refused_with(&app, &format!("Bearer {foreign}")).await;
    assert_eq!(
        body["errors"][0]["message"],
        "Invalid token: bad signature."
    );

    let no_exp = signed(json!({"sub": "alice"}), Algorithm::HS256, SECRET.as_bytes());
    let body = refused_with(&app, &format!("Bearer {no_exp}")).await;
    assert_eq!(
        body["errors"][0]["message"],
        "Invalid token: missing exp claim."
    );

    let other_alg = signed(
        json!({"sub": "alice", "exp": now() + 3600}),
        Algorithm::HS512,
        SECRET.as_bytes(),
    );
    refused_with(&app, &format!("Bearer {other_alg}")).await;
    refused_with(&app, "Bearer not.a.jwt").await;
    refused_with(&app, "Basic YWxpY2U6cHc=").await;
    assert_eq!(
        app.user_rows().await,
        0,
        "no refused request provisions a user"
    );
}

#[tokio::test]
async fn alg_none_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64_url(&format!(r#"{{"sub":"alice","exp":{}}}"#, now() + 3600));
    refused_with(&app, &format!("Bearer {header}.{payload}.")).await;
    assert_eq!(app.user_rows().await, 0);
}

/// Unpadded base64url, as JWTs use.
fn base64_url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn users_are_provisioned_on_first_sight_with_their_email() {
    let app = TestApp::spawn().await;
    let token = app
        .keys
        .mint("carol", Some("carol@example.com"), Duration::from_secs(60))
        .unwrap();
    let body = app
        .gql(Some(&token), "{ me { id email dhBalance } }", json!({}))
        .await;
    assert_eq!(body["data"]["me"]["email"], "carol@example.com");
    assert_eq!(body["data"]["me"]["dhBalance"], 0.0);
    let again = app.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(again["data"]["me"]["id"], body["data"]["me"]["id"]);
    assert_eq!(app.user_rows().await, 1);
}

#[tokio::test]
async fn introspection_needs_no_token() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn a_configured_audience_and_issuer_are_required_and_nbf_is_checked() {
    let app = TestApp::spawn_with(None, |c| {
        c.jwt.audience = Some("printgate".into());
        c.jwt.issuer = Some("https://idp.example".into());
    })
    .await;
    let exp = now() + 600;
    let key = SECRET.as_bytes();
    for (claims, why) in [
        (
            json!({"sub": "a", "exp": exp, "iss": "https://idp.example"}),
            "missing aud claim",
        ),
        (
            json!({"sub": "a", "exp": exp, "aud": "printgate"}),
            "missing iss claim",
        ),
        (
            json!({"sub": "a", "exp": exp, "aud": "other", "iss": "https://idp.example"}),
            "wrong audience",
        ),
        (
            json!({"sub": "a", "exp": exp, "aud": "printgate", "iss": "https://idp.example", "nbf": now() + 600}),
            "not valid yet",
        ),
    ] {
        let body = refused_with(
            &app,
            &format!("Bearer {}", signed(claims, Algorithm::HS256, key)),
        )
        .await;
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{why}: {message}");
    }
    assert_eq!(
        app.user_rows().await,
        0,
        "no refused token provisioned a user"
    );
    let good = signed(
        json!({"sub": "a", "exp": exp, "aud": "printgate", "iss": "https://idp.example"}),
        Algorithm::HS256,
        key,
    );
    let ok = app.gql(Some(&good), "{ me { id } }", json!({})).await;
    assert!(ok["errors"].is_null(), "{ok}");
}

#[test]
fn production_refuses_short_secrets_and_a_public_key_without_a_url_secret() {
    use printgate::auth::{JwtKeys, KeyError};
    use printgate::config::JwtConfig;
    let dir = tempfile::tempdir().unwrap();
    let config = |secret: Option<&str>, public_key: Option<std::path::PathBuf>| JwtConfig {
        secret: secret.map(str::to_owned),
        public_key,
        issuer: None,
        audience: None,
        url_secret: None,
        production: true,
        dev_secret_path: dir.path().join("s"),
        jwks_url: None,
        claims: Default::default(),
    };
    assert!(matches!(
        JwtKeys::load(&config(Some("too-short"), None)),
        Err(KeyError::SecretTooShort)
    ));
    assert!(JwtKeys::load(&config(Some(&"k".repeat(32)), None)).is_ok());
    let pem = dir.path().join("key.pem");
    std::fs::write(
        &pem,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    assert!(matches!(
        JwtKeys::load(&config(None, Some(pem.clone()))),
        Err(KeyError::UrlSecretRequired)
    ));
    let mut with_url = config(None, Some(pem));
    with_url.url_secret = Some("shared".into());
    let a = JwtKeys::load(&with_url).unwrap();
    let b = JwtKeys::load(&with_url).unwrap();
    assert_eq!(a.url_key(), b.url_key(), "every instance signs links alike");
}
