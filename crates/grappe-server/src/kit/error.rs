//! One error type for every handler, one JSON envelope for every 4xx and 5xx:
//! `{"error": "<code>", "detail": "<what went wrong, for a person>"}`. Internal errors are logged
//! here, once, and the client sees no internals.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use grappe_db::DbError;
use grappe_domain::account::InvalidInput;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is larger than the server accepts")]
    PayloadTooLarge,
    #[error("too many attempts; retry in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u64 },
    /// A quota is reached (queued jobs, log streams...): the reason, and how to get under it.
    #[error("{0}")]
    OverQuota(String),
    #[error("the request was not answered within {} s", .0.as_secs())]
    Timeout(std::time::Duration),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests { .. } | AppError::OverQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Invalid(_) => "invalid",
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::OverQuota(_) => "over_quota",
            AppError::Timeout(_) => "request_timeout",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn forbidden() -> AppError {
        AppError::Forbidden("you do not have the rights for this action")
    }
}

/// The envelope for a status with no [`AppError`] behind it (a 405 from the router, say).
pub fn envelope(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({ "error": code, "detail": detail });
    (status, axum::Json(body)).into_response()
}

impl AppError {
    /// What the client reads: internal errors are logged and only said to be.
    fn detail(&self) -> String {
        match self {
            AppError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                "internal error; it has been logged".to_owned()
            }
            AppError::Unavailable(what) => {
                tracing::warn!(what, "unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        }
    }

    /// `Retry-After` and `WWW-Authenticate`, where the error calls for them.
    fn with_headers(&self, mut response: Response) -> Response {
        if let AppError::TooManyRequests { retry_after_s } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }

    /// The same error in OpenAI's wire format (`{"error": {"message", "type", "param",
    /// "code"}}`), for the gateway's routes, which OpenAI's clients read.
    pub fn openai_response(self) -> Response {
        let status = self.status();
        let kind = match status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            status if status.is_server_error() => "api_error",
            _ => "invalid_request_error",
        };
        let code = match &self {
            AppError::Unauthenticated => "invalid_api_key",
            AppError::OverQuota(_) => "insufficient_quota",
            other => other.code(),
        };
        let body =
            serde_json::json!({ "error": { "message": self.detail(), "type": kind, "param": null, "code": code } });
        self.with_headers((status, axum::Json(body)).into_response())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let response = envelope(self.status(), self.code(), &self.detail());
        self.with_headers(response)
    }
}

impl From<InvalidInput> for AppError {
    fn from(error: InvalidInput) -> AppError {
        AppError::Invalid(error.to_string())
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> AppError {
        match error {
            DbError::Conflict(what) => AppError::Conflict(format!("{what} already exists")),
            DbError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            unavailable if unavailable.is_unavailable() => AppError::Unavailable(unavailable.to_string()),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> AppError {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => AppError::Invalid(detail),
            JsonRejection::JsonSyntaxError(_) => AppError::BadRequest(detail),
            JsonRejection::MissingJsonContentType(_) => {
                AppError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::PayloadTooLarge
            }
            _ => AppError::BadRequest(detail),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> AppError {
        AppError::BadRequest(rejection.body_text())
    }
}

pub type AppResult<T> = Result<T, AppError>;
