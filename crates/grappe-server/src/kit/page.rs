//! What every page shares: the chrome around it (navigation, language, who is logged in),
//! rendering a template, error and message pages, local redirect targets, dates, the fallback
//! page for unknown paths.

use askama::Template;
use axum::extract::Request;
use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use grappe_domain::calendar;
use grappe_domain::programme::Module;

use crate::kit::caller::{self, Caller};
use crate::kit::error::AppError;
use crate::kit::i18n::{Locale, Tr};

pub const LANG_COOKIE: &str = "lang";

/// `?next=PATH`: where a form sends the browser afterwards (a local path only: [`local_path`]).
#[derive(serde::Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// What every page shows around its content: navigation, language switch, who is logged in.
pub struct Chrome {
    pub tr: Tr,
    pub lang: &'static str,
    pub path: String,
    pub user_name: Option<String>,
    pub csrf: String,
    /// Whether the reader administers the platform (the admin page's link).
    pub is_admin: bool,
}

impl Chrome {
    pub fn new(headers: &HeaderMap, uri: &Uri, caller: Option<&Caller>) -> Chrome {
        let accept = headers.get(ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok());
        let locale = Locale::negotiate(caller::cookie(headers, LANG_COOKIE), accept);
        Chrome {
            tr: Tr { locale },
            lang: locale.code(),
            path: uri.path().to_owned(),
            user_name: caller.and_then(|caller| caller.user.as_ref().map(|user| user.name.clone())),
            csrf: caller.map(|caller| caller.csrf.clone()).unwrap_or_default(),
            is_admin: caller.is_some_and(|caller| caller.actor.is_admin()),
        }
    }

    pub fn nav(&self) -> Vec<(String, String, bool)> {
        let mut items = vec![("/".to_owned(), self.tr.t("nav-dashboard"), self.path == "/")];
        for module in Module::ALL {
            let href = format!("/{}", module.path());
            let current = self.path == href || self.path.starts_with(&format!("{href}/"));
            items.push((href, self.tr.t(&format!("nav-{}", module.path())), current));
        }
        items
    }

    /// A job state in the reader's language.
    pub fn state_label(&self, state: &str) -> String {
        self.tr.t(&format!("state-{state}"))
    }

    pub fn switch_href(&self) -> String {
        format!("/lang/{}?next={}", self.tr.t("lang-switch-code"), url_encode(&self.path))
    }
}

/// Percent-encodes everything outside the unreserved set (RFC 3986).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A redirect target from a form or query: a local path only, never another site. Only plain
/// URL characters pass: no white space or control characters (which browsers strip, turning
/// `/\t/evil` into `//evil`), no backslash, no scheme-relative `//`.
pub fn local_path(next: Option<&str>) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~/?=&%+,:;@!$'()*".contains(c);
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && path.chars().all(plain) => path.to_owned(),
        _ => "/".to_owned(),
    }
}

pub fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => AppError::Internal(error.into()).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
}

pub fn error_page(request: &Request, status: StatusCode, message_key: &str) -> Response {
    let caller = request.extensions().get::<Caller>();
    let chrome = Chrome::new(request.headers(), request.uri(), caller);
    let message = chrome.tr.t(message_key);
    message_page(chrome, status, message)
}

/// An error page with a message already in the reader's language.
pub fn message_page(chrome: Chrome, status: StatusCode, message: String) -> Response {
    render(&ErrorPage { chrome, message }, status)
}

/// The page for an object that does not exist, or that the reader may not see.
pub fn not_found_page(chrome: Chrome) -> Response {
    let message = chrome.tr.t("error-not-found");
    message_page(chrome, StatusCode::NOT_FOUND, message)
}

/// What is wrong with a submitted form: a message per field (by its name), and one for the
/// whole form (a refusal as a whole), in the reader's language.
#[derive(Default)]
pub struct FormErrors {
    pub fields: Vec<(&'static str, String)>,
    pub form: Option<String>,
}

impl FormErrors {
    pub fn of(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(name, _)| *name == field).map(|(_, message)| message.as_str())
    }
}

/// The object a page's form acts on: its CSRF token checked, its id (a path segment) parsed;
/// else the page to answer.
pub fn form_target(chrome: Chrome, caller: &Caller, csrf: &str, id: &str) -> Result<(Chrome, i64), Box<Response>> {
    let chrome = form_checked(chrome, caller, csrf)?;
    match id.parse::<i64>() {
        Ok(id) => Ok((chrome, id)),
        Err(_) => Err(Box::new(not_found_page(chrome))),
    }
}

/// A page's form whose CSRF token is the session's; else the refusal, as a page.
pub fn form_checked(chrome: Chrome, caller: &Caller, csrf: &str) -> Result<Chrome, Box<Response>> {
    if !caller::check_csrf(caller, csrf) {
        let message = chrome.tr.t("login-csrf");
        return Err(Box::new(message_page(chrome, StatusCode::FORBIDDEN, message)));
    }
    Ok(chrome)
}

/// A page's form that names no object: its CSRF token checked, then (only then) `action` run,
/// then [`after_form`] to `to`.
pub async fn checked_form<T>(
    chrome: Chrome,
    caller: &Caller,
    csrf: &str,
    to: &str,
    action: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<Response, AppError> {
    match form_checked(chrome, caller, csrf) {
        Ok(chrome) => after_form(chrome, to, action.await),
        Err(refusal) => Ok(*refusal),
    }
}

/// After a page's form: to `to`, or the refusal as a page in the reader's language (an error of
/// ours stays an error).
pub fn after_form<T>(chrome: Chrome, to: &str, done: Result<T, AppError>) -> Result<Response, AppError> {
    match done {
        Ok(_) => Ok(axum::response::Redirect::to(to).into_response()),
        Err(error) if error.status().is_client_error() => Ok(message_page(chrome, error.status(), error.to_string())),
        Err(error) => Err(error),
    }
}

/// A CSV file to download under `filename` (its characters are the caller's own: no quote).
pub fn csv_download(filename: &str, csv: String) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
        (axum::http::header::CONTENT_DISPOSITION, disposition),
    ];
    (headers, csv).into_response()
}

/// A CSV field, quoted when it must be (RFC 4180), and defused against spreadsheet formulas
/// (a leading `=`, `+`, `-` or `@` gets a `'`).
pub fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// `YYYY-MM-DD` (UTC) of Unix milliseconds.
pub use grappe_domain::calendar::iso_date;

/// `2026-11-29 14:05 UTC`: a date and a minute, in UTC.
pub fn iso_datetime(unix_ms: i64) -> String {
    let minutes = unix_ms.rem_euclid(86_400_000) / 60_000;
    format!("{} {:02}:{:02} UTC", iso_date(unix_ms), minutes / 60, minutes % 60)
}

/// `2026-11-29T14:05:03.120Z`: ISO 8601 in UTC to the millisecond, for files machines read.
pub fn iso8601(unix_ms: i64) -> String {
    let ms = unix_ms.rem_euclid(86_400_000);
    let (hours, minutes, seconds, millis) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z", iso_date(unix_ms))
}

/// Where the server is reached: its public URL, or the `Host` the request came to.
pub fn base_url(state: &crate::kit::state::AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(axum::http::header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// `2026-11-29T14:05`: the value of an HTML `datetime-local` field, in UTC.
pub fn datetime_local(unix_ms: i64) -> String {
    let minutes = unix_ms.rem_euclid(86_400_000) / 60_000;
    format!("{}T{:02}:{:02}", iso_date(unix_ms), minutes / 60, minutes % 60)
}

/// Unix milliseconds of a `datetime-local` value read as UTC (`YYYY-MM-DDTHH:MM`, seconds
/// allowed), by the days-from-civil algorithm; none if it is not a valid date and time.
pub fn parse_datetime_local(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute) = (time.next()?.ok()?, time.next()?.ok()?);
    let second = time.next().transpose().ok()?.unwrap_or(0);
    if !(1..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=calendar::days_in_month(year, month)).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    let days = calendar::days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// The answer to a path no route matches: a page for browsers, the envelope for everyone else.
pub async fn not_found(request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !request.uri().path().starts_with("/api/") {
        return error_page(&request, StatusCode::NOT_FOUND, "error-not-found");
    }
    AppError::NotFound(format!("no route for {} {}", request.method(), request.uri().path())).into_response()
}

#[cfg(test)]
mod tests {

    #[test]
    fn datetime_local_values_round_trip_in_utc() {
        for unix_ms in [0, 951_782_400_000, 1_795_961_100_000, 4_102_444_740_000] {
            assert_eq!(parse_datetime_local(&datetime_local(unix_ms)), Some(unix_ms));
        }
        assert_eq!(parse_datetime_local("2000-02-29T00:00"), Some(951_782_400_000));
        assert_eq!(parse_datetime_local("2026-11-29T14:05:30"), Some(1_795_961_130_000));
        for bad in ["", "2026-11-29", "2026-02-29T10:00", "2026-13-01T00:00", "2026-11-29T24:00", "x-1-1T0:0"] {
            assert_eq!(parse_datetime_local(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(1_700_000_000_000), "2023-11-14");
        assert_eq!(iso_date(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn redirects_stay_on_site() {
        assert_eq!(local_path(Some("/account")), "/account");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil")), "/");
        assert_eq!(local_path(Some("/\t/evil.example")), "/");
        assert_eq!(local_path(Some("/\r\nSet-Cookie: x")), "/");
        assert_eq!(local_path(Some("/a b")), "/");
        assert_eq!(local_path(Some("/data?page=2&q=%C3%A9")), "/data?page=2&q=%C3%A9");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("/a b?x=1&y"), "/a%20b%3Fx%3D1%26y");
    }
}
