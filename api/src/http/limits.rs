//! What one caller may ask of the server: request rate per subject and per client
//! address, body size, handling time and requests in flight.
//!
//! | limit | default | answer when exceeded |
//! |---|---|---|
//! | requests per authenticated subject | 5,000/s, burst 10,000 | `429 rate_limited` + `Retry-After` |
//! | requests per client address | 20,000/s, burst 40,000 | `429 rate_limited` + `Retry-After` |
//! | request body | 64 KiB | `413 payload_too_large` |
//! | handling time | 30 s | `503 request_timeout` |
//! | requests in flight | 1,024 | later requests wait for a slot |
//!
//! The rate defaults sit above what `commerce bench http` drives from one loopback
//! address (about 10,000 requests/s), so only abuse meets them; a rate of 0 turns a
//! limiter off. Rates are GCRA (`governor`): a caller may spend `burst` at once, then
//! `per_second` on average.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::errors::row;
use super::principal::Principal;
use super::AppState;

/// A request rate: `per_second` on average, up to `burst` at once. `per_second == 0`
/// turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Average requests per second; 0 = no limit.
    pub per_second: u32,
    /// Requests that may arrive at once (raised to `per_second` if lower).
    pub burst: u32,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };

    /// The governor quota, or `None` when off. A burst below the rate is raised to it,
    /// since a smaller bucket could never deliver the rate.
    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(self.per_second))?;
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

/// The limits of the server (see the module documentation for the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Per authenticated subject (`role:sub`).
    pub per_subject: RateLimit,
    /// Per client IP address, authenticated or not.
    pub per_address: RateLimit,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered `503 request_timeout`.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait.
    pub max_concurrent_requests: usize,
}

/// Default requests per second per subject.
pub const DEFAULT_SUBJECT_RATE: u32 = 5_000;
/// Default requests per second per client address.
pub const DEFAULT_ADDRESS_RATE: u32 = 20_000;
/// Default largest request body: 64 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default requests in flight.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1_024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_subject: RateLimit {
                per_second: DEFAULT_SUBJECT_RATE,
                burst: 2 * DEFAULT_SUBJECT_RATE,
            },
            per_address: RateLimit {
                per_second: DEFAULT_ADDRESS_RATE,
                burst: 2 * DEFAULT_ADDRESS_RATE,
            },
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

impl Limits {
    /// The default limits without rate limiting (benchmarks drive thousands of requests
    /// per second from one address).
    pub fn without_rate_limits() -> Self {
        Self {
            per_subject: RateLimit::OFF,
            per_address: RateLimit::OFF,
            ..Self::default()
        }
    }
}

/// How often (in requests) idle keys are dropped from the limiters, so that their
/// memory follows the active callers rather than every caller ever seen.
const PRUNE_EVERY: u64 = 8_192;

/// The rate limiters of one router, shared by all its routes.
#[derive(Debug)]
pub struct RateLimiters {
    subject: Option<DefaultKeyedRateLimiter<String>>,
    address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    seen: AtomicU64,
}

impl RateLimiters {
    /// Limiters for `limits` (those with rate 0 are left out).
    pub fn new(limits: &Limits) -> Self {
        Self {
            subject: limits.per_subject.quota().map(RateLimiter::keyed),
            address: limits.per_address.quota().map(RateLimiter::keyed),
            seen: AtomicU64::new(0),
        }
    }

    /// Counts one request of `address` and `subject`; `Err(wait)` when either is over
    /// its rate, with how long until the next request would be let in.
    fn admit(&self, address: Option<IpAddr>, subject: Option<&str>) -> Result<(), Duration> {
        if self.seen.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        if let (Some(limiter), Some(address)) = (&self.address, address) {
            limiter
                .check_key(&address)
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        }
        if let (Some(limiter), Some(subject)) = (&self.subject, subject) {
            limiter
                .check_key(&subject.to_string())
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        }
        Ok(())
    }

    /// Drops keys whose buckets are full again (they carry no information).
    fn prune(&self) {
        if let Some(limiter) = &self.subject {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.address {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The state of the limit middleware: the app state (to authenticate) and the limiters.
#[derive(Debug, Clone)]
pub struct LimitState {
    /// The app state, whose [`crate::http::Auth`] names the subject.
    pub app: AppState,
    /// The limiters shared by every route of the router.
    pub limiters: Arc<RateLimiters>,
}

/// Rate limits by client address (from the connection, when served with
/// `into_make_service_with_connect_info::<SocketAddr>()`) and by authenticated subject.
/// A request whose credential verifies carries its [`Principal`] on to the handler's
/// extractors, so the token is verified once; one that does not is limited by address
/// only and refused later by the route.
pub async fn rate_limit(
    State(state): State<LimitState>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let principal = state.app.auth.authenticate(request.headers()).ok();
    let subject = principal.as_ref().map(Principal::actor);
    if let Err(wait) = state.limiters.admit(address, subject.as_deref()) {
        return rate_limited(wait);
    }
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

/// `429 rate_limited` with `Retry-After` in whole seconds (at least 1).
fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = row::RATE_LIMITED
        .problem(format!(
            "the request rate limit is exceeded; retry in {seconds} s"
        ))
        .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Refuses bodies announced larger than the limit before reading them, and answers a
/// request that takes longer than the timeout. Bodies without a length (chunked) are
/// held to the same limit by `DefaultBodyLimit` when an extractor reads them.
pub async fn guard(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return payload_too_large(limits.max_body_bytes);
    }
    // A timeout as a middleware (rather than tower-http's `TimeoutLayer`, which answers
    // an empty 408) so the answer is a problem like every other error.
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?limits.request_timeout, "request timed out");
            row::REQUEST_TIMEOUT
                .problem(format!(
                    "the request was not handled within {} s",
                    limits.request_timeout.as_secs_f64()
                ))
                .into_response()
        }
    }
}

/// `413 payload_too_large`.
pub fn payload_too_large(limit: usize) -> Response {
    row::PAYLOAD_TOO_LARGE
        .problem(format!("the request body must not exceed {limit} bytes"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_burst_beyond_the_limit_is_refused_per_key() {
        let limiters = RateLimiters::new(&Limits {
            per_subject: RateLimit {
                per_second: 1,
                burst: 3,
            },
            per_address: RateLimit::OFF,
            ..Limits::default()
        });
        for _ in 0..3 {
            assert!(limiters.admit(None, Some("customer:a")).is_ok());
        }
        let wait = limiters.admit(None, Some("customer:a")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiters.admit(None, Some("customer:b")).is_ok());
        // No subject, no address: nothing to count against.
        assert!(limiters.admit(None, None).is_ok());
    }

    #[test]
    fn addresses_are_limited_for_everyone() {
        let limiters = RateLimiters::new(&Limits {
            per_subject: RateLimit::OFF,
            per_address: RateLimit {
                per_second: 1,
                burst: 1,
            },
            ..Limits::default()
        });
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [127, 0, 0, 2].into();
        assert!(limiters.admit(Some(here), None).is_ok());
        assert!(limiters.admit(Some(here), Some("staff:x")).is_err());
        assert!(limiters.admit(Some(there), None).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        assert!(RateLimit::OFF.quota().is_none());
        let limiters = RateLimiters::new(&Limits::without_rate_limits());
        for _ in 0..10_000 {
            assert!(limiters
                .admit(Some([10, 0, 0, 1].into()), Some("s"))
                .is_ok());
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let response = rate_limited(Duration::from_millis(1_200));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(rate_limited(Duration::ZERO).headers()[RETRY_AFTER], "1");
    }
}
