//! Request extractors whose rejections are [`AppError`]s, so that a malformed body, query or
//! path gets the JSON envelope: [`ApiJson`], [`ApiQuery`], [`Id`]; [`OpenAiBody`] for the gateway;
//! and [`body_within`], a raw body read whole up to a bound.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::kit::error::AppError;
use crate::kit::state::AppState;

/// `Json` whose rejections are [`AppError`]s, so a malformed body gets the envelope. Its body is
/// read by [`body_within`] up to the server's body limit, so that one past it is answered 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = body_within(body, state.config.body_limit_bytes).await?;
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        Ok(ApiJson(Json::<T>::from_request(request, state).await?.0))
    }
}

/// A body for the OpenAI-format gateway: read by [`body_within`] up to the server's body limit,
/// its refusal in OpenAI's error shape ([`AppError::openai_response`]).
pub struct OpenAiBody(pub axum::body::Bytes);

impl FromRequest<AppState> for OpenAiBody {
    type Rejection = axum::response::Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        body_within(request.into_body(), state.config.body_limit_bytes)
            .await
            .map(OpenAiBody)
            .map_err(AppError::openai_response)
    }
}

/// `Query` whose rejections are [`AppError`]s.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiQuery(Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// A path id: a positive integer, or a 404 (an id that cannot exist names nothing).
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound("no such object".into()))?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Id)
            .ok_or_else(|| AppError::NotFound(format!("no object with id `{raw}`")))
    }
}

/// A form that carries only its CSRF token (logout, cancel): checked by the handler.
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// How much of a body past its bound is still read (and dropped) before the refusal, for how
/// long in all, and how long a pause of the client ends it. Most HTTP libraries send the whole
/// body before they read the answer: had the server closed the connection with bytes unread, its
/// kernel would reset it, and the client would see "connection reset" instead of the 413 and its
/// reason. Past these bounds it closes at once (a lingering close, as nginx's).
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);
const DRAIN_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// A request's body, whole, if it holds at most `limit` bytes; else
/// [`AppError::PayloadTooLarge`], once the rest is read and dropped ([`drain`]). A body whose
/// announced length is past `limit` keeps nothing; one past it by more than [`DRAIN_BYTES`] is
/// refused before a byte of it is read.
pub async fn body_within(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, AppError> {
    use axum::body::HttpBody;
    use futures_util::StreamExt;
    let limit = limit as u64;
    let announced = body.size_hint().exact();
    if announced.is_some_and(|length| length > limit.saturating_add(DRAIN_BYTES)) {
        return Err(AppError::PayloadTooLarge);
    }
    let mut chunks = body.into_data_stream();
    let mut kept = Vec::new();
    if announced.is_none_or(|length| length <= limit) {
        kept.reserve(announced.unwrap_or(0) as usize);
        while let Some(chunk) = chunks.next().await {
            let chunk =
                chunk.map_err(|error| AppError::BadRequest(format!("the body could not be read whole: {error}")))?;
            if (kept.len() + chunk.len()) as u64 > limit {
                drain(chunks, (kept.len() + chunk.len()) as u64, limit.saturating_add(DRAIN_BYTES)).await;
                return Err(AppError::PayloadTooLarge);
            }
            kept.extend_from_slice(&chunk);
        }
        return Ok(kept.into());
    }
    drain(chunks, 0, limit.saturating_add(DRAIN_BYTES)).await;
    Err(AppError::PayloadTooLarge)
}

/// Reads and drops what is left of a body, `read` bytes of it already read, until its end, past
/// `most` bytes in all, after [`DRAIN_TIME`], or once the client pauses for [`DRAIN_PAUSE`].
async fn drain(
    mut chunks: impl futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin,
    mut read: u64,
    most: u64,
) {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    while read <= most {
        let until = deadline.min(tokio::time::Instant::now() + DRAIN_PAUSE);
        match tokio::time::timeout_at(until, chunks.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
            _ => return,
        }
    }
}
