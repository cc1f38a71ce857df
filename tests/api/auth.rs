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
