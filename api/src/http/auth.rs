//! Authentication: `Authorization: Bearer <token>`, where the token is either
//!
//! * a JWT signed with the configured key: HS256 with a shared secret (development,
//!   `commerce token` mints them), or RS256/ES256 verified with a public key PEM file or
//!   a JWKS file (production, tokens issued by an identity provider). `exp`, `nbf`,
//!   `iss` and `aud` are checked (issuer `commerce` and audience `commerce-api` unless
//!   configured otherwise, 30 s leeway for clock skew); `sub` and `role`
//!   (`customer|staff|admin|service`) name the principal, and a customer's `sub` must be
//!   their customer id (a UUID);
//! * or one of the admin tokens the server was started with (`--admin-token`): the admin
//!   token is folded into the roles and yields an `admin` principal (subject
//!   `admin-token`), so it opens every route an admin JWT opens.
//!
//! No credential is `401 unauthenticated` with `WWW-Authenticate: Bearer`; a credential
//! that does not verify (bad signature, expired, not yet valid, wrong issuer or
//! audience, garbage) is `401 unauthenticated` with
//! `WWW-Authenticate: Bearer error="invalid_token"` (the [`challenge`] middleware adds
//! the header to every 401). A valid credential without the needed role is
//! `403 forbidden`.
//!
//! Admin tokens are kept as SHA-256 digests and compared in constant time, so neither a
//! token's content nor its length leaks through response timing.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::row;
use super::principal::{Principal, Role};
use super::problem::Problem;
use super::AppState;
use crate::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// Fewest characters an admin token may have.
pub const MIN_TOKEN_LEN: usize = 16;
/// Most characters an admin token may have.
pub const MAX_TOKEN_LEN: usize = 512;

/// The admin tokens the server accepts. `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct AdminTokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminTokens({} configured)", self.digests.len())
    }
}

impl AdminTokens {
    /// Accepts `tokens` (empty entries are ignored); each must be 16 to 512 visible ASCII
    /// characters.
    pub fn new<I, T>(tokens: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut digests = Vec::new();
        for token in tokens {
            let token = token.as_ref().trim();
            if token.is_empty() {
                continue;
            }
            if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
                || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "an admin token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} visible ASCII characters"
                ));
            }
            digests.push(digest(token));
        }
        Ok(Self { digests })
    }

    /// Whether any admin token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of the admin tokens. Looks at every configured token.
    pub fn accepts(&self, token: &str) -> bool {
        let presented = digest(token);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known.ct_eq(&presented)
            })
            .into()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Leeway for `exp` and `nbf`, for clocks that disagree a little.
pub const LEEWAY_SECS: u64 = 30;

/// A key configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// The PEM is not an RSA or EC public key.
    #[error("the public key is neither an RSA nor an EC public key in PEM form: {0}")]
    PublicKey(jsonwebtoken::errors::Error),
    /// The JWKS file is not a key set.
    #[error("the JWKS document is not a JSON Web Key Set: {0}")]
    Jwks(serde_json::Error),
    /// The key set has no key this server can verify with.
    #[error("the JWKS document has no RS256 or ES256 signing key")]
    NoUsableJwk,
    /// A key file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One key tokens may be signed with, and the algorithm it verifies.
#[derive(Clone)]
struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Authenticates requests: admin tokens and JWTs (see the module documentation).
#[derive(Clone)]
pub struct Auth {
    /// Admin tokens, accepted as admin principals.
    pub admin_tokens: AdminTokens,
    keys: Arc<Vec<VerifyingKey>>,
    issuer: String,
    audience: String,
}

impl Default for Auth {
    /// Admin tokens only (none configured): every bearer token is refused until a key is
    /// configured.
    fn default() -> Self {
        Self {
            admin_tokens: AdminTokens::default(),
            keys: Arc::new(Vec::new()),
            issuer: DEFAULT_ISSUER.to_string(),
            audience: DEFAULT_AUDIENCE.to_string(),
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<_> = self.keys.iter().map(|k| k.algorithm).collect();
        f.debug_struct("Auth")
            .field("admin_tokens", &self.admin_tokens)
            .field("jwt_algorithms", &algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Auth {
    /// Verifies HS256 tokens signed with `secret` (development). Replaces any key
    /// configured before.
    pub fn with_hs256_secret(mut self, secret: &[u8]) -> Auth {
        self.keys = Arc::new(vec![VerifyingKey {
            kid: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        }]);
        self
    }

    /// Verifies RS256 (RSA key) or ES256 (P-256 key) tokens with a PEM public key.
    /// Replaces any key configured before.
    pub fn with_public_key_pem(mut self, pem: &[u8]) -> Result<Auth, AuthConfigError> {
        let (key, algorithm) = match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => (key, Algorithm::RS256),
            Err(_) => (
                DecodingKey::from_ec_pem(pem).map_err(AuthConfigError::PublicKey)?,
                Algorithm::ES256,
            ),
        };
        self.keys = Arc::new(vec![VerifyingKey {
            kid: None,
            algorithm,
            key,
        }]);
        Ok(self)
    }

    /// Verifies RS256/ES256 tokens with the keys of a JWKS document (`{"keys": [...]}`);
    /// a token's `kid` picks the key. Keys of other types or curves are skipped.
    /// Replaces any key configured before.
    pub fn with_jwks_json(mut self, json: &str) -> Result<Auth, AuthConfigError> {
        let set: JwkSet = serde_json::from_str(json).map_err(AuthConfigError::Jwks)?;
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let algorithm = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(VerifyingKey {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(AuthConfigError::NoUsableJwk);
        }
        self.keys = Arc::new(keys);
        Ok(self)
    }

    /// [`Auth::with_public_key_pem`] with the key read from `path`.
    pub fn with_public_key_file(self, path: &std::path::Path) -> Result<Auth, AuthConfigError> {
        let pem = read(path)?;
        self.with_public_key_pem(&pem)
    }

    /// [`Auth::with_jwks_json`] with the document read from `path`.
    pub fn with_jwks_file(self, path: &std::path::Path) -> Result<Auth, AuthConfigError> {
        let json = read(path)?;
        self.with_jwks_json(&String::from_utf8_lossy(&json))
    }

    /// The `iss` tokens must carry (default `commerce`).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Auth {
        self.issuer = issuer.into();
        self
    }

    /// The `aud` tokens must carry (default `commerce-api`).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Auth {
        self.audience = audience.into();
        self
    }

    /// Accepts `tokens` as admin credentials too.
    pub fn with_admin_tokens(mut self, tokens: AdminTokens) -> Auth {
        self.admin_tokens = tokens;
        self
    }

    /// Whether JWTs can be verified (a secret, public key or JWKS is configured).
    pub fn verifies_jwts(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The principal of a request's `Authorization: Bearer …` credential.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Problem> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| unauthenticated("send `Authorization: Bearer <token>`".to_string()))?;
        if self.admin_tokens.accepts(token) {
            return Ok(Principal {
                subject: "admin-token".into(),
                role: Role::Admin,
            });
        }
        self.verify(token).map_err(unauthenticated)
    }

    /// The principal of a JWT, or why it is refused (a message safe to show the caller).
    fn verify(&self, token: &str) -> Result<Principal, String> {
        if self.keys.is_empty() {
            return Err("the bearer token is not valid".into());
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "the bearer token is not a JWT")?;
        // With a `kid`, only the key of that id; without one (a single-key issuer), each
        // key of the token's algorithm in turn, so a JWKS that lists several still works.
        let candidates: Vec<&VerifyingKey> = self
            .keys
            .iter()
            .filter(|k| {
                k.algorithm == header.alg
                    && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "no configured key verifies {:?} tokens{}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|kid| format!(" with kid `{kid}`"))
                    .unwrap_or_default()
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let mut refused = None;
        let mut verified = None;
        for key in candidates {
            match jsonwebtoken::decode::<TokenClaims>(token, &key.key, &validation) {
                Ok(data) => {
                    verified = Some(data);
                    break;
                }
                // Another key may have signed it; any other failure is the token's.
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    refused = Some(e);
                }
                Err(e) => return Err(refusal(&e)),
            }
        }
        let data = match (verified, refused) {
            (Some(data), _) => data,
            (None, Some(e)) => return Err(refusal(&e)),
            (None, None) => return Err("the bearer token is not valid".into()),
        };
        let TokenClaims { sub, role } = data.claims;
        if sub.trim().is_empty() {
            return Err("the token's subject is empty".into());
        }
        if role == Role::Customer && uuid::Uuid::try_parse(&sub).is_err() {
            return Err("a customer token's subject must be the customer id (a UUID)".into());
        }
        Ok(Principal { subject: sub, role })
    }
}

/// The claims the API reads beyond those `jsonwebtoken` validates itself.
#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: String,
    role: Role,
}

/// Why a token was refused, in words that reveal nothing about the keys.
fn refusal(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "the token's audience is not accepted".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::Json(_) => {
            "the token's claims are malformed (is `role` one of customer, staff, admin, service?)"
                .into()
        }
        _ => "the bearer token is not valid".into(),
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|source| AuthConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn unauthenticated(detail: String) -> Problem {
    row::UNAUTHENTICATED.problem(detail)
}

/// Adds the RFC 6750 challenge to every `401` that lacks one: `Bearer` when the request
/// carried no credential, `Bearer error="invalid_token"` when it carried one that was
/// refused. Extractors answer with plain problems; this layer keeps the header in one
/// place.
pub async fn challenge(request: Request, next: Next) -> Response {
    let presented = request.headers().contains_key(AUTHORIZATION);
    let mut response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED
        && !response.headers().contains_key(WWW_AUTHENTICATE)
    {
        let value = if presented {
            HeaderValue::from_static("Bearer error=\"invalid_token\"")
        } else {
            HeaderValue::from_static("Bearer")
        };
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// Proof that the request carries an admin credential (an admin token or an admin
/// JWT). Put it first among a handler's extractors.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// Why a request was not let in.
#[derive(Debug)]
pub struct AuthRejection(Problem);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = state
            .auth
            .authenticate(&parts.headers)
            .map_err(AuthRejection)?;
        if principal.role == Role::Admin {
            Ok(Admin)
        } else {
            Err(AuthRejection(
                row::FORBIDDEN.problem("this route needs the admin role"),
            ))
        }
    }
}

/// The token of a `Bearer` credential (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_tokens_are_accepted_and_others_not() {
        let tokens = AdminTokens::new(["first-admin-token-1", "", "second-admin-token-2"]).unwrap();
        assert!(!tokens.is_empty());
        assert!(tokens.accepts("first-admin-token-1"));
        assert!(tokens.accepts("second-admin-token-2"));
        assert!(!tokens.accepts("first-admin-token-"));
        assert!(!tokens.accepts(""));
        assert!(!AdminTokens::default().accepts("first-admin-token-1"));
        assert!(!format!("{tokens:?}").contains("first"));
    }

    #[test]
    fn short_or_odd_tokens_are_refused() {
        assert!(AdminTokens::new(["short"]).is_err());
        assert!(AdminTokens::new(["has a space in the middle"]).is_err());
        assert!(AdminTokens::new(["x".repeat(MAX_TOKEN_LEN + 1)]).is_err());
        assert!(AdminTokens::new(Vec::<String>::new()).unwrap().is_empty());
    }

    #[test]
    fn bearer_credentials_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
