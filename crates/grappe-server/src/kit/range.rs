//! Byte ranges (RFC 9110): one `Range: bytes=...` over a body of known size, answered with 206
//! and `Content-Range`, 416 when it cannot be satisfied, or the whole body.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A `Range: bytes=...` request over a file of `size` bytes: the first and last byte, or `None`
/// if it cannot be satisfied. One range only; anything else is read as no range.
pub fn byte_range(header: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Some(None) };
    if spec.contains(',') {
        return Some(None);
    }
    let (first, last) = spec.split_once('-')?;
    let range = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let length: u64 = suffix.parse().ok()?;
            (size.saturating_sub(length), size.checked_sub(1)?)
        }
        (first, "") => (first.parse().ok()?, size.checked_sub(1)?),
        (first, last) => (first.parse().ok()?, last.parse::<u64>().ok()?.min(size.checked_sub(1)?)),
    };
    (range.0 <= range.1 && range.0 < size).then_some(Some(range))
}

/// The response to a request for a body of `size` bytes of `content_type`, honouring its
/// `Range` header: `body(first, last)` makes the bytes `first..=last`.
pub fn ranged(headers: &HeaderMap, size: u64, content_type: &str, body: impl FnOnce(u64, u64) -> Body) -> Response {
    let requested = headers.get(header::RANGE).and_then(|value| value.to_str().ok());
    let range = match requested.map(|text| byte_range(text, size)) {
        None => None,
        Some(Some(range)) => range,
        Some(None) => {
            let unsatisfied = format!("bytes */{size}");
            return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, unsatisfied)], "").into_response();
        }
    };
    let kind = (header::CONTENT_TYPE, content_type.to_owned());
    let accept = (header::ACCEPT_RANGES, "bytes".to_owned());
    match range {
        Some((first, last)) => {
            let content_range = (header::CONTENT_RANGE, format!("bytes {first}-{last}/{size}"));
            (StatusCode::PARTIAL_CONTENT, [kind, accept, content_range], body(first, last)).into_response()
        }
        None if size == 0 => ([kind, accept], Vec::new()).into_response(),
        None => ([kind, accept], body(0, size - 1)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(Some((0, 99))));
        assert_eq!(byte_range("bytes=900-", 1000), Some(Some((900, 999))));
        assert_eq!(byte_range("bytes=-100", 1000), Some(Some((900, 999))));
        assert_eq!(byte_range("bytes=-5000", 1000), Some(Some((0, 999))));
        assert_eq!(byte_range("bytes=10-5000", 1000), Some(Some((10, 999))));
        assert_eq!(byte_range("bytes=1000-", 1000), None, "past the end");
        assert_eq!(byte_range("bytes=5-2", 1000), None);
        assert_eq!(byte_range("bytes=0-0", 0), None, "an empty file has no byte");
        assert_eq!(byte_range("bytes=a-b", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), Some(None), "several ranges: the whole file");
        assert_eq!(byte_range("items=0-1", 1000), Some(None));
    }
}
