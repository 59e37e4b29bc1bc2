//! Input checks every route module shares: path ids (`400 invalid_id`), out-of-bounds
//! body values (`422 invalid_body`) and the `ETag` of a stream version.

use aggregates::promotion::PromotionCode;
use aggregates::Sku;
use axum::http::header::ETAG;
use axum::http::{HeaderName, HeaderValue};
use uuid::Uuid;

use crate::http::errors::row;
use crate::http::problem::Problem;

/// `400 invalid_id`: a path id that cannot name anything.
pub(super) fn invalid_id(what: &str, raw: &str) -> Problem {
    row::INVALID_ID.problem(format!(
        "`{}` is not a valid {what}",
        raw.chars().take(80).collect::<String>()
    ))
}

/// `422 invalid_body`: a well-formed body with a value out of bounds.
pub(super) fn invalid_body(detail: impl Into<String>) -> Problem {
    row::INVALID_BODY.problem(detail)
}

/// A UUID path segment.
pub(super) fn path_uuid(raw: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(raw).map_err(|_| invalid_id("UUID", raw))
}

/// A SKU path segment.
pub(super) fn path_sku(raw: &str) -> Result<Sku, Problem> {
    Sku::parse(raw).map_err(|_| invalid_id("SKU", raw))
}

/// A coupon code path segment, normalised.
pub(super) fn path_coupon_code(raw: &str) -> Result<PromotionCode, Problem> {
    PromotionCode::parse(raw).map_err(|_| invalid_id("coupon code", raw))
}

/// `ETag: "<version>"`.
pub(super) fn etag(version: i64) -> (HeaderName, HeaderValue) {
    let value = HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    (ETAG, value)
}
