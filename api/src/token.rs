//! Bearer tokens: the JWT claims the API reads, and minting of development tokens
//! (HS256 with the configured secret, as `commerce token` and the tests do).
//!
//! Production deployments verify RS256/ES256 tokens issued elsewhere (see
//! [`crate::http::auth`]); this module only signs with a shared secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::http::principal::Role;

/// The issuer (`iss`) the API expects unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "commerce";
/// The audience (`aud`) the API expects unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "commerce-api";
/// Fewest bytes an HS256 secret may have: RFC 7518 §3.2 asks for a key at least as
/// long as the hash output.
pub const MIN_SECRET_LEN: usize = 32;

/// The claims of an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal: a customer's id (a UUID) for customers, any name otherwise.
    pub sub: String,
    /// What the principal may do.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not valid before, seconds since the Unix epoch.
    pub nbf: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Issuer; the API expects [`DEFAULT_ISSUER`] unless configured otherwise.
    pub iss: String,
    /// Audience; the API expects [`DEFAULT_AUDIENCE`] unless configured otherwise.
    pub aud: String,
}

impl Claims {
    /// Claims for `subject` in `role`, valid from `now` for `ttl`, with the default
    /// issuer and audience.
    pub fn new(role: Role, subject: &str, ttl: Duration, now: DateTime<Utc>) -> Self {
        let iat = now.timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        Self {
            sub: subject.to_string(),
            role,
            exp: iat.saturating_add(ttl),
            nbf: iat,
            iat,
            iss: DEFAULT_ISSUER.to_string(),
            aud: DEFAULT_AUDIENCE.to_string(),
        }
    }
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    #[error("the signing secret must have at least {MIN_SECRET_LEN} bytes")]
    SecretTooShort,
    /// A customer token's subject must be a customer id.
    #[error("a customer's subject must be their customer id (a UUID), not `{0}`")]
    CustomerSubjectNotUuid(String),
    /// No subject.
    #[error("the subject must not be empty")]
    EmptySubject,
    /// The JWT library refused to sign.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// An HS256 token for `subject` in `role`, valid from `now` for `ttl`, with the default
/// issuer and audience.
pub fn mint(
    secret: &[u8],
    role: Role,
    subject: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<String, TokenError> {
    sign_hs256(secret, &Claims::new(role, subject, ttl, now))
}

/// Signs arbitrary `claims` with HS256 (tests use it to build expired or foreign
/// tokens). The same checks as [`mint`] apply to the subject.
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, TokenError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(TokenError::SecretTooShort);
    }
    if claims.sub.trim().is_empty() {
        return Err(TokenError::EmptySubject);
    }
    if claims.role == Role::Customer && uuid::Uuid::try_parse(&claims.sub).is_err() {
        return Err(TokenError::CustomerSubjectNotUuid(claims.sub.clone()));
    }
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )?)
}

/// Parses a duration such as `90s`, `15m`, `1h`, `7d` or a plain number of seconds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 1h or 7d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use s, m, h or d"
            ))
        }
    };
    number
        .checked_mul(factor)
        .filter(|secs| *secs > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_ttl("42"), Ok(Duration::from_secs(42)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn minting_checks_secret_and_subject() {
        let now = Utc::now();
        let hour = Duration::from_secs(3_600);
        assert!(matches!(
            mint(b"short", Role::Staff, "alice", hour, now),
            Err(TokenError::SecretTooShort)
        ));
        assert!(matches!(
            mint(SECRET, Role::Customer, "alice", hour, now),
            Err(TokenError::CustomerSubjectNotUuid(_))
        ));
        assert!(matches!(
            mint(SECRET, Role::Staff, " ", hour, now),
            Err(TokenError::EmptySubject)
        ));
        let token = mint(SECRET, Role::Staff, "alice", hour, now).unwrap();
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn claims_span_the_ttl_from_now() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let claims = Claims::new(Role::Admin, "ops", Duration::from_secs(60), now);
        assert_eq!(
            (claims.iat, claims.nbf, claims.exp),
            (1_800_000_000, 1_800_000_000, 1_800_000_060)
        );
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!(claims.aud, DEFAULT_AUDIENCE);
    }
}
