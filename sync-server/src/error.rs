//! The one error type of the relay's handlers, sent as an [`ErrorFrame`] on the
//! websocket or as a status code over HTTP.

use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use doran_protocol::{ErrorCode, ErrorFrame};

use crate::{auth::AuthError, rules::RuleError, store::StoreError};

/// A refusal: a stable [`ErrorCode`] and a message for logs. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// What went wrong.
    pub code: ErrorCode,
    /// Detail for logs (never secrets).
    pub message: String,
    /// For transient errors, when to retry (ms).
    pub retry_after_ms: Option<u64>,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `Forbidden` with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// `NotFound` with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// `Internal`: the relay failed. Log the cause before building it.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// `Unavailable`: a part of the relay is down for now; retry soon.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after_ms: Some(1000),
            ..ApiError::new(ErrorCode::Unavailable, message)
        }
    }

    /// `RateLimited`, retry after `ms`.
    pub fn rate_limited(ms: u64) -> Self {
        ApiError {
            retry_after_ms: Some(ms.max(1)),
            ..ApiError::new(ErrorCode::RateLimited, "too many requests")
        }
    }

    /// The error frame to send.
    pub fn frame(&self) -> ErrorFrame {
        let frame = ErrorFrame::new(self.code, self.message.clone());
        match self.retry_after_ms {
            Some(ms) => frame.retry_after(ms),
            None => frame,
        }
    }

    /// The HTTP status for this code.
    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::NotSignedIn
            | ErrorCode::BadSignature
            | ErrorCode::ChallengeExpired
            | ErrorCode::ChallengeReplayed
            | ErrorCode::UnknownUser
            | ErrorCode::UnknownDevice
            | ErrorCode::DeviceRevoked => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge | ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::HashMismatch | ErrorCode::InvalidInput | ErrorCode::MalformedFrame => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::QuotaExceeded | ErrorCode::DocumentFull => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::TooManyFamilies | ErrorCode::DocumentSealed => StatusCode::CONFLICT,
            ErrorCode::TooSlow => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::ShuttingDown | ErrorCode::Unavailable | ErrorCode::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    /// The status, an `x-doran-error: <code>` header and `name: message` as text.
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            format!("{}: {}\n", self.code.name(), self.message),
        )
            .into_response();
        response
            .headers_mut()
            .insert("x-doran-error", HeaderValue::from(self.code.code()));
        if let Some(ms) = self.retry_after_ms {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(ms.div_ceil(1000)));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let error = ApiError::new(e.code(), e.to_string());
        match e {
            AuthError::Busy { retry_after_ms } => ApiError {
                retry_after_ms: Some(retry_after_ms.max(1)),
                ..error
            },
            _ => error,
        }
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        ApiError::new(ErrorCode::InvalidInput, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::EmailTaken | StoreError::Conflict(_) => ErrorCode::AlreadyExists,
            StoreError::AlreadyMember => ErrorCode::AlreadyMember,
            StoreError::AlreadyInvited => ErrorCode::AlreadyInvited,
            StoreError::InviteExpired => ErrorCode::InviteExpired,
            StoreError::InviteClosed => ErrorCode::InviteAnswered,
            StoreError::LinkClaimed => ErrorCode::LinkClaimed,
            StoreError::LinkClosed => ErrorCode::LinkAnswered,
            StoreError::LinkExpired => ErrorCode::LinkExpired,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::DeviceRevoked => ErrorCode::DeviceRevoked,
            StoreError::DocumentFull => ErrorCode::DocumentFull,
            StoreError::DocumentSealed => ErrorCode::DocumentSealed,
            StoreError::NotSealed => ErrorCode::Forbidden,
            StoreError::TooManyFamilies => ErrorCode::TooManyFamilies,
            StoreError::TooManyInvites | StoreError::TooManyCerts | StoreError::TooManyVolumes => {
                ErrorCode::QuotaExceeded
            }
            StoreError::HashMismatch => ErrorCode::HashMismatch,
            StoreError::Invalid(_) => ErrorCode::Conflict,
            // Backend, corruption, schema and lock failures: the relay's fault.
            _ => {
                // With its causes: a driver's error often says only "db error".
                let mut error = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    error.push_str(": ");
                    error.push_str(&cause.to_string());
                    source = cause.source();
                }
                tracing::error!(%error, "store failure");
                return ApiError::internal("storage failure");
            }
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_codes_and_hide_backend_detail() {
        let e = ApiError::from(StoreError::backend(std::io::Error::other("disk /secret")));
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.message.contains("secret"));
        assert_eq!(
            ApiError::from(StoreError::AlreadyInvited).code,
            ErrorCode::AlreadyInvited
        );
        assert_eq!(
            ApiError::rate_limited(1500).frame().retry_after_ms,
            Some(1500)
        );
        assert_eq!(ApiError::forbidden("x").status(), StatusCode::FORBIDDEN);
    }
}
