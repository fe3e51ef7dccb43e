//! `multipart/form-data` (RFC 7578), as browsers send a form with a file: enough to read a few
//! text fields and files from a body already bounded in size. Parts are split on the boundary
//! the `Content-Type` names; each part's `Content-Disposition` gives its field name and, for a
//! file, its file name. Anything else (nested multipart, transfer encodings) is refused.

/// Whether a request's body is `multipart/form-data` (a browser's form with a file).
pub fn is_multipart(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"))
}

/// A `multipart/form-data` request's body, read whole up to `limit` bytes, and its boundary:
/// what [`parts`] splits.
pub async fn read(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<(axum::body::Bytes, String), crate::kit::error::AppError> {
    use crate::kit::error::AppError;
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = boundary(content_type)
        .map_err(|why| AppError::BadRequest(format!("send the form as multipart/form-data: {}", why.0)))?;
    let bytes = crate::kit::extract::body_within(body, limit).await?;
    Ok((bytes, boundary))
}

/// [`parts`], its refusal as the client's error.
pub fn parts_of<'a>(bytes: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, crate::kit::error::AppError> {
    parts(bytes, boundary).map_err(|why| crate::kit::error::AppError::BadRequest(format!("the form: {}", why.0)))
}

/// One part of a form: its field name, the file name if it is a file, its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub bytes: &'a [u8],
}

/// Why a body is not a form we read.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, Malformed> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Malformed("not multipart/form-data"));
    }
    let boundary = params
        .filter_map(|param| param.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .ok_or(Malformed("no boundary"))?;
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(Malformed("a boundary of 1 to 70 characters"));
    }
    Ok(boundary)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// A parameter of a `Content-Disposition` header (`name="x"`), quotes removed.
fn parameter(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case(key).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The parts of `body`, in order.
pub fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, Malformed> {
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes()).ok_or(Malformed("no part"))?;
    let mut rest = &body[start + delimiter.len()..];
    let next = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or(Malformed("a boundary not followed by a line end"))?;
        let headers_end = find(rest, b"\r\n\r\n").ok_or(Malformed("a part without the end of its headers"))?;
        let headers = std::str::from_utf8(&rest[..headers_end]).map_err(|_| Malformed("headers not in UTF-8"))?;
        let content = &rest[headers_end + 4..];
        let end = find(content, next.as_bytes()).ok_or(Malformed("a part without a closing boundary"))?;
        let disposition = headers
            .split("\r\n")
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case("content-disposition").then_some(value.trim())
            })
            .ok_or(Malformed("a part without Content-Disposition"))?;
        if !disposition.to_ascii_lowercase().starts_with("form-data") {
            return Err(Malformed("a part that is not form-data"));
        }
        let name = parameter(disposition, "name").ok_or(Malformed("a part without a name"))?;
        let filename = parameter(disposition, "filename");
        parts.push(Part { name, filename, bytes: &content[..end] });
        rest = &content[end + next.len()..];
    }
}

/// The text of the field `name`, if the form has it.
pub fn text<'a>(parts: &'a [Part<'_>], name: &str) -> Option<&'a str> {
    parts
        .iter()
        .find(|part| part.name == name && part.filename.is_none())
        .and_then(|part| std::str::from_utf8(part.bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nt0ken\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"projet final.pdf\"\r\n\
        Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--X not the end\r\n--XyZ--\r\n";

    #[test]
    fn fields_and_files_are_read_with_their_names() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ").unwrap(), "XyZ");
        assert_eq!(boundary("Multipart/Form-Data; charset=utf-8; boundary=\"XyZ\"").unwrap(), "XyZ");
        let parts = parts(BODY, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(text(&parts, "csrf"), Some("t0ken"));
        assert_eq!(parts[1].filename.as_deref(), Some("projet final.pdf"));
        assert_eq!(parts[1].bytes, b"%PDF-1.4\r\n--X not the end");
        assert_eq!(text(&parts, "file"), None, "a file is not a text field");
    }

    #[test]
    fn broken_bodies_are_refused() {
        assert!(boundary("application/x-www-form-urlencoded").is_err());
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))).is_err());
        assert!(parts(b"", "XyZ").is_err());
        assert!(parts(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", "XyZ").is_err());
        assert!(parts(b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", "XyZ").is_err());
        assert!(parts(b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", "XyZ").is_err());
        assert!(parts(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"", "XyZ").is_err());
        assert_eq!(parts(b"--XyZ--", "XyZ").unwrap(), Vec::new());
    }
}
