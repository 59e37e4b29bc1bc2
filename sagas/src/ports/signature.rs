//! Verification of signed provider callbacks (payment outcomes, tracking scans).
//!
//! The header has the shape `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<raw body>"` with the shared secret, as Stripe signs its webhooks. A callback is
//! accepted only when the signature matches (compared in constant time), its timestamp
//! lies within the tolerance of now (either side), and its signature was not accepted
//! before: the caller keeps the accepted signatures at least as long as the tolerance
//! and answers `seen`.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is malformed")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp {timestamp} is outside the accepted window")]
    Stale { timestamp: i64 },
    #[error("callback was already accepted")]
    Replayed,
}

/// An accepted callback's signature facts; record `signature` as seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    pub signature: String,
}

/// The header value for `body` signed at `at`.
pub fn sign(secret: &[u8], at: DateTime<Utc>, body: &[u8]) -> String {
    let timestamp = at.timestamp();
    let mac = mac(secret, timestamp, body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks `header` for `body` at `now`. See the module docs.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
    seen: impl Fn(&str) -> bool,
) -> Result<Verified, SignatureError> {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => signature = Some(v.to_string()),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Malformed);
    };
    let bytes = hex::decode(&signature).map_err(|_| SignatureError::Malformed)?;
    mac(secret, timestamp, body)
        .verify_slice(&bytes)
        .map_err(|_| SignatureError::Mismatch)?;
    if (now.timestamp() - timestamp).abs() > tolerance.num_seconds() {
        return Err(SignatureError::Stale { timestamp });
    }
    if seen(&signature) {
        return Err(SignatureError::Replayed);
    }
    Ok(Verified {
        timestamp,
        signature,
    })
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeZone;

    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn check(header: &str, body: &[u8], now: DateTime<Utc>) -> Result<Verified, SignatureError> {
        verify(SECRET, header, body, now, Duration::minutes(5), |_| false)
    }

    #[test]
    fn a_fresh_signed_callback_is_accepted() {
        let header = sign(SECRET, at(), b"{\"ok\":true}");
        let verified = check(&header, b"{\"ok\":true}", at() + Duration::seconds(30)).unwrap();
        assert_eq!(verified.timestamp, at().timestamp());
    }

    #[test]
    fn a_changed_body_or_secret_is_refused() {
        let header = sign(SECRET, at(), b"{\"amount\":100}");
        assert_eq!(
            check(&header, b"{\"amount\":900}", at()),
            Err(SignatureError::Mismatch)
        );
        let other = sign(b"another secret", at(), b"{\"amount\":100}");
        assert_eq!(
            check(&other, b"{\"amount\":100}", at()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_callbacks_are_refused() {
        let header = sign(SECRET, at(), b"x");
        assert!(matches!(
            check(&header, b"x", at() + Duration::minutes(6)),
            Err(SignatureError::Stale { .. })
        ));
        assert!(matches!(
            check(&header, b"x", at() - Duration::minutes(6)),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn a_replayed_callback_is_refused() {
        let header = sign(SECRET, at(), b"x");
        let mut accepted = BTreeSet::new();
        let first = verify(SECRET, &header, b"x", at(), Duration::minutes(5), |s| {
            accepted.contains(s)
        })
        .unwrap();
        accepted.insert(first.signature);
        let again = verify(SECRET, &header, b"x", at(), Duration::minutes(5), |s| {
            accepted.contains(s)
        });
        assert_eq!(again, Err(SignatureError::Replayed));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["", "t=abc,v1=00", "t=1", "v1=zz,t=1"] {
            assert_eq!(check(header, b"x", at()), Err(SignatureError::Malformed));
        }
    }
}
