//! RFC 9457 problem details: every error the API returns is `application/problem+json`
//! with a stable machine-readable `code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem response.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    #[serde(skip)]
    pub status: StatusCode,
    #[serde(rename = "status")]
    pub status_code: u16,
    pub detail: String,
    /// Stable code clients can branch on.
    pub code: &'static str,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            type_uri: format!("https://commerce.invalid/problems/{code}"),
            title,
            status,
            status_code: status.as_u16(),
            detail: detail.into(),
            code,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}
