//! The problem table: every error the API can answer, as an RFC 9457 problem with a
//! stable `code`, an HTTP status and a title.
//!
//! The table is one macro invocation: each domain error enum gets an exhaustive `match`
//! (no catch-all arm), so a new variant does not compile until it has a row, and
//! [`PROBLEMS`] / [`PROBLEM_CODES`] list every row for the OpenAPI document and tests.

use axum::http::StatusCode;
use infra::command::CommandError;

use super::problem::Problem;

/// One row of the problem table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemRow {
    /// Stable snake_case code clients branch on.
    pub code: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Short human title, the same for every occurrence of the code.
    pub title: &'static str,
}

impl ProblemRow {
    /// A problem of this row with `detail`.
    pub fn problem(&self, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            self.code,
            self.title,
            detail,
        )
    }
}

macro_rules! problem_table {
    (
        standalone {
            $( $s_name:ident = ($s_status:literal, $s_code:literal, $s_title:literal), )*
        }
    ) => {
        /// Rows that no domain enum produces (HTTP, command-layer and auth problems),
        /// by name.
        pub mod row {
            use super::ProblemRow;
            $(
                #[doc = $s_title]
                pub const $s_name: ProblemRow =
                    ProblemRow { code: $s_code, status: $s_status, title: $s_title };
            )*
        }

        /// Every row of the table.
        pub const PROBLEMS: &[ProblemRow] = &[ $( row::$s_name, )* ];

        /// Every problem code the API can answer.
        pub const PROBLEM_CODES: &[&str] = &[ $( $s_code, )* ];
    };
}

problem_table! {
    standalone {
        UNAUTHENTICATED = (401, "unauthenticated", "Authentication required"),
        FORBIDDEN = (403, "forbidden", "Forbidden"),
        RATE_LIMITED = (429, "rate_limited", "Too many requests"),
        MALFORMED_JSON = (400, "malformed_json", "Malformed JSON"),
        INVALID_BODY = (422, "invalid_body", "Invalid request body"),
        UNREADABLE_BODY = (400, "unreadable_body", "Unreadable request body"),
        UNSUPPORTED_MEDIA_TYPE = (415, "unsupported_media_type", "Unsupported media type"),
        PAYLOAD_TOO_LARGE = (413, "payload_too_large", "Payload too large"),
        INVALID_PATH = (400, "invalid_path", "Invalid path parameter"),
        INVALID_QUERY = (400, "invalid_query", "Invalid query parameters"),
        ROUTE_NOT_FOUND = (404, "route_not_found", "No such route"),
        METHOD_NOT_ALLOWED = (405, "method_not_allowed", "Method not allowed"),
        INVALID_IDEMPOTENCY_KEY = (400, "invalid_idempotency_key", "Invalid Idempotency-Key"),
        IDEMPOTENCY_KEY_REUSED = (422, "idempotency_key_reused", "Idempotency-Key reused"),
        INVALID_IF_MATCH = (400, "invalid_if_match", "Invalid If-Match"),
        NOT_FOUND = (404, "not_found", "Not found"),
        VERSION_MISMATCH = (412, "version_mismatch", "Version mismatch"),
        CONTENTION = (503, "contention", "Busy, retry"),
        INTERNAL_ERROR = (500, "internal_error", "Internal error"),
        NOT_READY = (503, "not_ready", "Not ready"),
        INVALID_WEBHOOK = (400, "invalid_webhook", "Invalid webhook subscription"),
        INVALID_REQUEST = (400, "invalid_request", "Invalid request"),
        WEBHOOK_NOT_FOUND = (404, "webhook_not_found", "Webhook not found"),
        DELIVERY_NOT_FOUND = (404, "delivery_not_found", "Delivery not found"),
        DOMAIN_RULE = (422, "domain_rule", "Refused by a business rule"),
        LOOKUP_FAILED = (422, "lookup_failed", "Unknown reference"),
    }
}

/// The row of `code`, if the table has one.
pub fn row(code: &str) -> Option<&'static ProblemRow> {
    PROBLEMS.iter().find(|r| r.code == code)
}

impl From<CommandError> for Problem {
    fn from(err: CommandError) -> Self {
        match &err {
            CommandError::Domain(e) => row::DOMAIN_RULE.problem(e.to_string()),
            CommandError::Lookup(e) => row::LOOKUP_FAILED.problem(e.to_string()),
            CommandError::NotFound { .. } => row::NOT_FOUND.problem(err.to_string()),
            CommandError::VersionMismatch { .. } => row::VERSION_MISMATCH.problem(err.to_string()),
            CommandError::Contention { .. } => row::CONTENTION.problem(err.to_string()),
            CommandError::Decode { .. } | CommandError::Store(_) => {
                tracing::error!(error = %err, "command failed");
                row::INTERNAL_ERROR.problem("the request could not be completed")
            }
        }
    }
}
