//! `ApiJson<T>`: a JSON body whose every rejection is a problem (malformed JSON, unknown
//! fields, wrong types, wrong content type, oversize body), never axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::errors::row;
use super::problem::Problem;

/// A JSON request body. Request types should be `#[serde(deny_unknown_fields)]`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// The problem for a JSON body rejection.
pub fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            row::UNSUPPORTED_MEDIA_TYPE.problem("send the body as `Content-Type: application/json`")
        }
        JsonRejection::JsonSyntaxError(e) => row::MALFORMED_JSON.problem(e.body_text()),
        JsonRejection::JsonDataError(e) => row::INVALID_BODY.problem(e.body_text()),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            row::PAYLOAD_TOO_LARGE.problem("the request body exceeds the configured limit")
        }
        other => row::UNREADABLE_BODY.problem(other.body_text()),
    }
}
