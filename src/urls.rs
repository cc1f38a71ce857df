//! Signed, expiring snapshot URLs: an `<img>` tag can load them without an
//! Authorization header, and no one without the URL can.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a snapshot URL stays valid, at least.
pub const URL_TTL: Duration = Duration::from_secs(600);
/// Expiry times are rounded up to this step, so a URL stays the same for a
/// while and browsers can cache the image.
const STEP_SECS: i64 = 300;

/// Signs and checks snapshot URLs.
pub struct UrlSigner {
    key: Vec<u8>,
    base: String,
}

impl UrlSigner {
    /// `base` is prepended to paths (an absolute origin, or empty for
    /// paths relative to the server).
    pub fn new(key: Vec<u8>, base: &str) -> Self {
        Self {
            key,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(&self, printer_id: i32, version: i64, exp: i64) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(format!("snapshot:{printer_id}:{version}:{exp}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The URL of the snapshot taken at `taken_at`, valid from `now` for at
    /// least [`URL_TTL`].
    pub fn sign(&self, printer_id: i32, taken_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        self.sign_on(&self.base, printer_id, taken_at, now)
    }

    /// [`UrlSigner::sign`] on another origin (what the ML service reaches
    /// printgate at).
    pub fn sign_on(
        &self,
        base: &str,
        printer_id: i32,
        taken_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> String {
        let base = base.trim_end_matches('/');
        let ttl = i64::try_from(URL_TTL.as_secs()).unwrap_or(600);
        let exp = (now.timestamp() + ttl).div_euclid(STEP_SECS) * STEP_SECS + STEP_SECS;
        let version = taken_at.timestamp_millis();
        let sig = self.mac(printer_id, version, exp);
        format!("{base}/snapshots/{printer_id}.jpg?v={version}&exp={exp}&sig={sig}")
    }

    /// Whether a URL's parameters are genuine and not expired.
    pub fn verify(
        &self,
        printer_id: i32,
        version: i64,
        exp: i64,
        sig: &str,
        now: DateTime<Utc>,
    ) -> bool {
        if exp < now.timestamp() {
            return false;
        }
        let expected = self.mac(printer_id, version, exp);
        // Constant-time comparison: no timing hint about the signature.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(expected.as_bytes());
        let a = mac.finalize().into_bytes();
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(sig.as_bytes());
        a == mac.finalize().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_verify_until_they_expire_and_not_when_tampered() {
        let signer = UrlSigner::new(b"k".to_vec(), "http://h");
        let now = Utc::now();
        let url = signer.sign(3, now, now);
        let q: std::collections::HashMap<&str, &str> = url
            .split_once('?')
            .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).collect())
            .unwrap_or_default();
        let v: i64 = q["v"].parse().unwrap_or_default();
        let exp: i64 = q["exp"].parse().unwrap_or_default();
        assert!(signer.verify(3, v, exp, q["sig"], now));
        assert!(!signer.verify(4, v, exp, q["sig"], now), "another printer");
        assert!(
            !signer.verify(3, v, exp + 300, q["sig"], now),
            "a longer life"
        );
        let later = now + chrono::Duration::seconds(exp - now.timestamp() + 1);
        assert!(!signer.verify(3, v, exp, q["sig"], later), "expired");
    }
}
