//! The problem table: every error a command can end in, as an RFC 9457 problem.

use axum::http::StatusCode;
use infra::command::CommandError;

use super::problem::Problem;

impl From<CommandError> for Problem {
    fn from(err: CommandError) -> Self {
        match &err {
            CommandError::Domain(e) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "domain_rule",
                "Refused by a business rule",
                e.to_string(),
            ),
            CommandError::Lookup(e) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "lookup_failed",
                "Unknown reference",
                e.to_string(),
            ),
            CommandError::NotFound { .. } => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                err.to_string(),
            ),
            CommandError::VersionMismatch { .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                "Version mismatch",
                err.to_string(),
            ),
            CommandError::Contention { .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "contention",
                "Busy",
                err.to_string(),
            ),
            CommandError::Decode { .. } | CommandError::Store(_) => {
                tracing::error!(error = %err, "command failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal error",
                    "the request could not be completed",
                )
            }
        }
    }
}
