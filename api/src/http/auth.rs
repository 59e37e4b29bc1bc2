//! Authentication of the admin API: `Authorization: Bearer <token>`, where the token is
//! one of the admin tokens the server was started with (`--admin-token`).
//!
//! * no `Authorization` header, or not a bearer credential: `401 unauthenticated`
//!   (with `WWW-Authenticate: Bearer`);
//! * a bearer token that is not an admin token: `403 forbidden`. With no admin token
//!   configured, every token is refused: the admin API is off.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time, so neither a
//! token's content nor its length leaks through response timing.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::AppState;

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

/// Authenticates requests: today the configured admin tokens (an admin principal);
/// JWT bearer tokens with roles are checked here too once configured.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub admin_tokens: AdminTokens,
}

impl Auth {
    /// The principal of a request's `Authorization: Bearer …` credential.
    pub fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<super::principal::Principal, Problem> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authentication required",
                    "send `Authorization: Bearer <token>`",
                )
            })?;
        if self.admin_tokens.accepts(token) {
            return Ok(super::principal::Principal {
                subject: "admin-token".into(),
                role: super::principal::Role::Admin,
            });
        }
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            "the bearer token is not valid",
        ))
    }
}

/// Proof that the request carries an admin token. Put it first among a handler's
/// extractors.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// Why a request was not let in.
#[derive(Debug)]
pub struct AuthRejection(Problem);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let challenge = self.0.status == StatusCode::UNAUTHORIZED;
        let mut response = self.0.into_response();
        if challenge {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                AuthRejection(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authentication required",
                    "send `Authorization: Bearer <admin token>`",
                ))
            })?;
        if state.admin_tokens.accepts(token) {
            Ok(Admin)
        } else {
            Err(AuthRejection(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "the bearer token is not an admin token",
            )))
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
