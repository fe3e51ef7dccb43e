//! The web UI: server-rendered pages (askama templates, checked at compile time), French by
//! default, every text from the translation files, no JavaScript needed.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::header::{ACCEPT_LANGUAGE, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use grappe_db::{StoredProgramme, sha256_hex};
use grappe_domain::money::{Cents, format_short};
use grappe_domain::programme::Module;
use serde::Deserialize;

use crate::api;
use crate::auth::{self, Caller, SESSION_COOKIE};
use crate::chart::{self, Bar, BarChart};
use crate::error::AppError;
use crate::i18n::{Locale, Tr};
use crate::state::AppState;

pub const LANG_COOKIE: &str = "lang";

/// The module pages, each an empty state until its module lands.
pub const MODULE_PAGES: [(&str, &str); 5] = [
    ("/calls", "Calls and jury module"),
    ("/data", "Open data commons module"),
    ("/models", "Model registry module"),
    ("/challenges", "Challenges module"),
    ("/booster", "IA Booster module"),
];

/// What every page shows around its content: navigation, language switch, who is logged in.
pub struct Chrome {
    pub tr: Tr,
    pub lang: &'static str,
    pub path: String,
    pub user_name: Option<String>,
    pub csrf: String,
}

impl Chrome {
    pub fn new(headers: &HeaderMap, uri: &Uri, caller: Option<&Caller>) -> Chrome {
        let accept = headers.get(ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok());
        let locale = Locale::negotiate(auth::cookie(headers, LANG_COOKIE), accept);
        Chrome {
            tr: Tr { locale },
            lang: locale.code(),
            path: uri.path().to_owned(),
            user_name: caller.and_then(|caller| caller.user.as_ref().map(|user| user.name.clone())),
            csrf: caller.map(|caller| caller.csrf.clone()).unwrap_or_default(),
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
fn local_path(next: Option<&str>) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~/?=&%+,:;@!$'()*".contains(c);
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && path.chars().all(plain) => path.to_owned(),
        _ => "/".to_owned(),
    }
}

pub(crate) fn render(template: &impl Template, status: StatusCode) -> Response {
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

struct LineView {
    label: String,
    envelope: String,
    committed: String,
    disbursed: String,
}

struct InstrumentView {
    name: String,
    summary: String,
    href: String,
    budget: Option<String>,
}

struct KpiView {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    chart_svg: String,
    lines: Vec<LineView>,
    instruments: Vec<InstrumentView>,
    kpis: Vec<KpiView>,
}

fn dashboard_view(chrome: Chrome, programme: &StoredProgramme) -> Dashboard {
    let locale = chrome.tr.locale;
    let money = |cents: i64| format_short(Cents::new(cents), locale.decimal_separator());
    let all_lines = programme.instruments.iter().flat_map(|instrument| instrument.budget_lines.iter());
    let lines: Vec<LineView> = all_lines
        .clone()
        .map(|line| LineView {
            label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
            envelope: money(line.envelope_cents),
            committed: money(line.committed_cents),
            disbursed: money(line.disbursed_cents),
        })
        .collect();
    let bars = all_lines
        .map(|line| Bar {
            label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
            whole: line.envelope_cents,
            part: line.committed_cents,
            inner_part: line.disbursed_cents,
            value_text: money(line.envelope_cents),
        })
        .collect();
    let (title, description) = (chrome.tr.t("dashboard-chart-title"), chrome.tr.t("dashboard-chart-desc"));
    let legend = [chrome.tr.t("legend-envelope"), chrome.tr.t("legend-committed"), chrome.tr.t("legend-disbursed")];
    let chart_svg = chart::horizontal_bars(&BarChart {
        title: &title,
        description: &description,
        legend: [&legend[0], &legend[1], &legend[2]],
        bars,
    });
    let instruments = programme
        .instruments
        .iter()
        .map(|instrument| {
            let total: i64 = instrument.budget_lines.iter().map(|line| line.envelope_cents).sum();
            InstrumentView {
                name: locale.pick(&instrument.name_fr, &instrument.name_en).to_owned(),
                summary: locale.pick(&instrument.summary_fr, &instrument.summary_en).to_owned(),
                href: format!("/{}", instrument.module),
                budget: (total > 0).then(|| money(total)),
            }
        })
        .collect();
    let approximately = chrome.tr.t("dashboard-approximate");
    let kpis = programme
        .kpis
        .iter()
        .map(|kpi| {
            let figure = if kpi.unit == "cents" { money(kpi.value) } else { kpi.value.to_string() };
            KpiView {
                label: locale.pick(&kpi.label_fr, &kpi.label_en).to_owned(),
                value: if kpi.approximate { format!("{approximately} {figure}") } else { figure },
            }
        })
        .collect();
    Dashboard { chrome, chart_svg, lines, instruments, kpis }
}

pub async fn dashboard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let programme = state.db.programme().await?;
    let view = dashboard_view(Chrome::new(&headers, &uri, Some(&caller)), &programme);
    Ok(render(&view, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "module.html")]
struct ModulePage {
    chrome: Chrome,
    title: String,
}

pub async fn module_page(Extension(caller): Extension<Caller>, headers: HeaderMap, uri: Uri) -> Response {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let title = chrome.tr.t(&format!("module-{}-title", uri.path().trim_start_matches('/')));
    render(&ModulePage { chrome, title }, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<NextQuery>,
) -> Response {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let page = LoginPage { chrome, next: local_path(query.next.as_deref()), email: String::new(), error: None };
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let client = api::client_ip(&state, peer, &headers);
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let next = local_path(form.next.as_deref());
    let failed = |chrome: Chrome, key: &str, status| {
        let error = Some(chrome.tr.t(key));
        render(&LoginPage { chrome, next: next.clone(), email: form.email.clone(), error }, status)
    };
    if !auth::check_csrf(&caller, &form.csrf) {
        return Ok(failed(chrome, "login-csrf", StatusCode::FORBIDDEN));
    }
    let user = match api::authenticate(&state, client, &form.email, form.password.clone()).await {
        Ok(user) => user,
        Err(AppError::Unauthenticated) => {
            return Ok(failed(chrome, "login-failed", StatusCode::UNAUTHORIZED));
        }
        Err(AppError::TooManyRequests { .. }) => {
            return Ok(failed(chrome, "login-throttled", StatusCode::TOO_MANY_REQUESTS));
        }
        Err(other) => return Err(other),
    };
    let session = auth::new_secret();
    let ttl = state.config.session_ttl;
    let expires_at = grappe_db::now_ms() + ttl.as_millis() as i64;
    state.db.create_session(&sha256_hex(session.as_bytes()), user.id, expires_at).await?;
    let mut response = Redirect::to(&next).into_response();
    let cookie = auth::set_cookie(SESSION_COOKIE, &session, ttl.as_secs(), state.config.secure_cookies);
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if !auth::check_csrf(&caller, &form.csrf) {
        return Err(AppError::Forbidden("the form expired; reload the page and try again"));
    }
    if let Some(session) = auth::cookie(&headers, SESSION_COOKIE) {
        state.db.delete_session(&sha256_hex(session.as_bytes())).await?;
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(SET_COOKIE, auth::set_cookie(SESSION_COOKIE, "", 0, state.config.secure_cookies));
    Ok(response)
}

pub async fn set_language(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let locale = Locale::parse(&code).ok_or_else(|| AppError::NotFound(format!("no language `{code}`")))?;
    let mut response = Redirect::to(&local_path(query.next.as_deref())).into_response();
    let one_year_s = 365 * 24 * 3600;
    response
        .headers_mut()
        .append(SET_COOKIE, auth::set_cookie(LANG_COOKIE, locale.code(), one_year_s, state.config.secure_cookies));
    Ok(response)
}

struct RoleView {
    role: String,
    scope: String,
}

struct TokenView {
    name: String,
    created: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    email: String,
    organisation: Option<String>,
    roles: Vec<RoleView>,
    tokens: Vec<TokenView>,
}

pub async fn account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(user) = caller.user.clone() else {
        return Err(AppError::BadRequest("the admin token has no account page".into()));
    };
    let organisations = state.db.list_organisations().await?;
    let organisation = organisations.into_iter().find(|org| Some(org.id) == user.organisation_id).map(|org| org.name);
    let everywhere = chrome.tr.t("role-scope-global");
    let roles = state
        .db
        .grants_of(user.id)
        .await?
        .into_iter()
        .map(|row| RoleView {
            role: row.grant.role.as_str().to_owned(),
            scope: match row.grant.scope {
                grappe_domain::account::Scope::Global => everywhere.clone(),
                scope => scope.to_string(),
            },
        })
        .collect();
    let tokens = state
        .db
        .api_tokens_of(user.id)
        .await?
        .into_iter()
        .map(|token| TokenView {
            name: token.name,
            created: iso_date(token.created_at),
            revoked: token.revoked_at.is_some(),
        })
        .collect();
    let page = AccountPage { chrome, name: user.name, email: user.email, organisation, roles, tokens };
    Ok(render(&page, StatusCode::OK))
}

/// `YYYY-MM-DD` (UTC) of Unix milliseconds, by the civil-from-days algorithm.
pub fn iso_date(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

pub async fn stylesheet() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/app.css")).into_response()
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
