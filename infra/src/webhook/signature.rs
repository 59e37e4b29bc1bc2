//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`,
//! keyed with the bytes of a `whsec_<base64>` secret.
//!
//! Receivers verify a delivery with [`verify`] (and [`verify_timestamp`] against their
//! own clock, to refuse replays of old requests).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes a secret may have (the Standard Webhooks lower bound).
pub const MIN_SECRET_BYTES: usize = 24;
/// Most key bytes a secret may have.
pub const MAX_SECRET_BYTES: usize = 64;
/// Key bytes of a generated secret.
const GENERATED_SECRET_BYTES: usize = 32;
/// Most signatures one `webhook-signature` header may carry for [`verify`] to look at.
const MAX_SIGNATURES: usize = 16;

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("a webhook secret is `whsec_` followed by base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")]
    InvalidSecret,
    #[error("no signature in the header matches")]
    Mismatch,
    #[error("the webhook-timestamp is {0} s away from now, beyond the tolerance")]
    StaleTimestamp(i64),
}

/// A subscription's signing secret: `whsec_` and the base64 of the HMAC key.
///
/// `Debug` does not show the secret.
#[derive(Clone)]
pub struct WebhookSecret {
    text: String,
    /// The HMAC keyed with the secret, cloned for each message.
    keyed: HmacSha256,
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for WebhookSecret {}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`, the key being 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SignatureError::InvalidSecret)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::InvalidSecret)?;
        Self::from_key(text.to_string(), &key)
    }

    fn from_key(text: String, key: &[u8]) -> Result<Self, SignatureError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SignatureError::InvalidSecret);
        }
        let keyed = HmacSha256::new_from_slice(key).map_err(|_| SignatureError::InvalidSecret)?;
        Ok(Self { text, keyed })
    }

    /// A new random secret (32 bytes from the operating system's seeded CSPRNG).
    pub fn generate() -> Self {
        let mut key = [0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
        let keyed = HmacSha256::new_from_slice(&key).unwrap_or_else(|_| {
            // HMAC accepts keys of every length.
            unreachable!("HMAC refused a {GENERATED_SECRET_BYTES}-byte key")
        });
        Self { text, keyed }
    }

    /// The `whsec_…` text, to hand to the integrator.
    pub fn expose(&self) -> &str {
        &self.text
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` header value for one request: `v1,<base64 HMAC-SHA256>` over
/// `{id}.{timestamp}.{body}`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = secret.mac(id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(digest))
}

/// Checks a `webhook-signature` header (space-separated `version,signature` entries, as
/// sent during a secret rotation) against the request: succeeds when one `v1` entry
/// matches. The comparison takes constant time.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
) -> Result<(), SignatureError> {
    let mac = secret.mac(id, timestamp, body);
    let matched = signature_header
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Checks that a `webhook-timestamp` lies within `tolerance` of `now` (the Standard
/// Webhooks recommendation is five minutes), so that a captured request cannot be
/// replayed later.
pub fn verify_timestamp(
    timestamp: i64,
    now: DateTime<Utc>,
    tolerance: std::time::Duration,
) -> Result<(), SignatureError> {
    let skew = now.timestamp().saturating_sub(timestamp);
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if skew.unsigned_abs() > tolerance.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp(skew));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // The example published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_published_example() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(sign(&secret, ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn verifies_the_published_example_and_refuses_changes() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        verify(&secret, ID, TIMESTAMP, BODY, SIGNATURE).unwrap();
        // One of several entries (a rotation) is enough.
        verify(
            &secret,
            ID,
            TIMESTAMP,
            BODY,
            &format!("v1,AAAA {SIGNATURE}"),
        )
        .unwrap();
        let refused = [
            verify(&secret, "msg_other", TIMESTAMP, BODY, SIGNATURE),
            verify(&secret, ID, TIMESTAMP + 1, BODY, SIGNATURE),
            verify(
                &secret,
                ID,
                TIMESTAMP,
                br#"{"test": 2432232315}"#,
                SIGNATURE,
            ),
            verify(
                &secret,
                ID,
                TIMESTAMP,
                BODY,
                &SIGNATURE.replace("v1,", "v2,"),
            ),
            verify(&secret, ID, TIMESTAMP, BODY, ""),
            verify(&secret, ID, TIMESTAMP, BODY, "v1,not base64!"),
        ];
        for result in refused {
            assert_eq!(result, Err(SignatureError::Mismatch));
        }
        let other = WebhookSecret::generate();
        assert_eq!(
            verify(&other, ID, TIMESTAMP, BODY, SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn secrets_are_checked_and_generated_fresh() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_c2hvcnQ=",
            "whsec_***",
        ] {
            assert_eq!(
                WebhookSecret::parse(bad),
                Err(SignatureError::InvalidSecret)
            );
        }
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(a.expose()).unwrap(), a);
        assert!(!format!("{a:?}").contains(&a.expose()[6..]));
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let now = Utc.timestamp_opt(TIMESTAMP, 0).unwrap();
        let five_minutes = std::time::Duration::from_secs(300);
        verify_timestamp(TIMESTAMP, now, five_minutes).unwrap();
        verify_timestamp(TIMESTAMP - 300, now, five_minutes).unwrap();
        verify_timestamp(TIMESTAMP + 300, now, five_minutes).unwrap();
        assert_eq!(
            verify_timestamp(TIMESTAMP - 301, now, five_minutes),
            Err(SignatureError::StaleTimestamp(301))
        );
        assert_eq!(
            verify_timestamp(TIMESTAMP + 301, now, five_minutes),
            Err(SignatureError::StaleTimestamp(-301))
        );
    }
}
