//! Who is calling: bearer tokens, session cookies and the admin token become an [`Actor`], and
//! the route's [`Access`] rule is checked by [`guard`] before any handler runs. Passwords are
//! hashed with argon2id; secrets are stored as SHA-256 only.
//!
//! Cross-site requests: a write by a browser (a form, or an API call with the session cookie)
//! must come from our own origin (`Origin`, else `Referer`, when the browser sends one) and
//! carry a CSRF token that is a keyed hash of its session (synchronizer tokens: a token
//! planted by another page of the same host fits no session it does not know); before login,
//! of a pre-session cookie, which closes login CSRF. Over HTTPS the cookies carry the
//! `__Host-` prefix, so that no other port or subdomain can set them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, REFERER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use grappe_db::{UserRow, sha256_hex};
use grappe_domain::account::Password;
use grappe_domain::policy::{self, Actor, Decision};

use crate::kit::error::AppError;
use crate::kit::page;
use crate::kit::route::{Kind, RouteRule};
use crate::kit::state::AppState;

pub const SESSION_COOKIE: &str = "grappe_session";
/// A random value set before login, which the login form's CSRF token is bound to.
pub const PRESESSION_COOKIE: &str = "grappe_presession";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const API_TOKEN_PREFIX: &str = "grp_";
pub const DENIED_HEADER: &str = "x-grappe-denied";

/// A fresh random secret, hex-encoded (256 bits).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    grappe_db::hex(&bytes)
}

pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", new_secret())
}

/// How a project's gateway key starts, so that it is told from a user's token at a glance.
pub const GATEWAY_KEY_PREFIX: &str = "gsk-";

/// How a batch's compute job's credential starts: `gjob-JOB-TOKEN`, where TOKEN is the job's
/// replica token (`gateway::batches::job_key`).
pub const BATCH_JOB_PREFIX: &str = "gjob-";

pub fn new_gateway_key() -> String {
    format!("{GATEWAY_KEY_PREFIX}{}", new_secret())
}

/// At most this many argon2 computations at once (19 MiB each): a burst of logins waits its
/// turn instead of taking the machine's memory.
const HASHING_AT_ONCE: usize = 4;

fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(HASHING_AT_ONCE))
}

/// argon2id with the crate's defaults (19 MiB, 2 passes), off the async threads.
pub async fn hash_password(password: Password) -> anyhow::Result<String> {
    let _permit = hashing_permits().acquire().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))
    })
    .await?
}

/// Checks a password against a stored hash; with no user, checks against a dummy hash so that an
/// unknown email takes as long as a wrong password.
pub async fn verify_password(stored_hash: Option<String>, candidate: String) -> bool {
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3c8Ehg5nY7X3kBLYc6wYnqP5n1CqJTk9HYK3n3cvfpI";
    let Ok(_permit) = hashing_permits().acquire().await else { return false };
    let known = stored_hash.is_some();
    let stored = stored_hash.unwrap_or_else(|| DUMMY.to_owned());
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .unwrap_or(false)
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(';')).find_map(
        |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        },
    )
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Lax always, Secure when served over TLS.
pub fn set_cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The name of a session cookie: with the `__Host-` prefix over TLS (Secure, `Path=/`, no
/// `Domain`: no other origin of the host can set it).
pub fn session_cookie_name(base: &str, secure: bool) -> String {
    if secure { format!("__Host-{base}") } else { base.to_owned() }
}

/// A token bound to `value` for one `purpose` (a session's CSRF token, a job run's replica
/// token): HMAC-SHA256 of `purpose:value` under the installation's secret, hex.
pub fn keyed_token(secret: &[u8], purpose: &str, value: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(purpose.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    grappe_db::hex(&mac.finalize().into_bytes())
}

/// Our own origin, as browsers write it in `Origin`: the public URL's, or the request's host
/// with the scheme the cookies are set for.
fn own_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &state.config.public_url {
        let after_scheme = url.find("://").map_or(0, |at| at + 3);
        let end = url[after_scheme..].find('/').map_or(url.len(), |at| after_scheme + at);
        return Some(url[..end].to_ascii_lowercase());
    }
    let host = headers.get(HOST)?.to_str().ok()?;
    let scheme = if state.config.secure_cookies { "https" } else { "http" };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// Whether a request comes from our own pages, as far as the browser says: its `Origin`, else
/// its `Referer`'s origin; true when it says neither (a non-browser client, or an old one: the
/// CSRF token still applies).
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let said = headers
        .get(ORIGIN)
        .and_then(|value| value.to_str().ok())
        .filter(|origin| *origin != "null")
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            let referer = headers.get(REFERER)?.to_str().ok()?;
            let after_scheme = referer.find("://")? + 3;
            let end = referer[after_scheme..].find('/').map_or(referer.len(), |at| after_scheme + at);
            Some(referer[..end].to_ascii_lowercase())
        });
    match (said, own_origin(state, headers)) {
        (None, _) => true,
        (Some(said), Some(own)) => said == own,
        (Some(_), None) => false,
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Nothing,
    Bearer,
    Session,
    /// A batch's compute job, paying with the batch's key (at batch priority).
    BatchJob,
}

/// The resolved caller, put in the request's extensions by [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub user: Option<UserRow>,
    /// The gateway key, for a key's requests.
    pub key: Option<grappe_db::GatewayKeyRow>,
    pub via: Via,
    /// The CSRF token of this browser (bound to its session or pre-session), for forms to
    /// embed and API writes by cookie to send as `X-CSRF-Token`.
    pub csrf: String,
}

impl Caller {
    /// The name recorded in the audit log.
    pub fn audit_name(&self) -> String {
        match (&self.actor, &self.user) {
            (Actor::AdminToken, _) => "admin-token".to_owned(),
            (Actor::ProjectKey { key, .. }, _) => format!("key:{key}"),
            (_, Some(user)) => format!("user:{}", user.id),
            _ => "anonymous".to_owned(),
        }
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn actor_of(state: &AppState, user: UserRow) -> Result<(Actor, Option<UserRow>), AppError> {
    let grants = state.db.grants_of(user.id).await?.into_iter().map(|row| row.grant).collect();
    Ok((Actor::User { id: user.id, grants }, Some(user)))
}

/// A user as the server itself acts for them (the demo's content), with their grants.
pub async fn caller_of_user(state: &AppState, user: UserRow) -> Result<Caller, AppError> {
    let (actor, user) = actor_of(state, user).await?;
    Ok(Caller { actor, user, key: None, via: Via::Nothing, csrf: String::new() })
}

/// The token of an `Authorization: Bearer TOKEN` header's value; none if it is not one.
pub fn bearer(value: &axum::http::HeaderValue) -> Option<&str> {
    value.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Credentials to caller. A bearer token that is present but invalid is refused (401) even on
/// public routes; a stale session cookie only makes the caller anonymous.
type Resolved = (Actor, Option<UserRow>, Option<grappe_db::GatewayKeyRow>, Via);

async fn resolve(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Resolved, AppError> {
    let session_cookie = session_cookie_name(SESSION_COOKIE, state.config.secure_cookies);
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = bearer(value).ok_or(AppError::Unauthenticated)?;
        if let Some(admin_token) = &state.config.admin_token
            && constant_time_eq(admin_token.as_bytes(), token.as_bytes())
        {
            return Ok((Actor::AdminToken, None, None, Via::Bearer));
        }
        if token.starts_with(GATEWAY_KEY_PREFIX) {
            let key =
                state.db.gateway_key_by_hash(&sha256_hex(token.as_bytes())).await?.ok_or(AppError::Unauthenticated)?;
            let actor = Actor::ProjectKey { key: key.id, project: key.project_id };
            return Ok((actor, None, Some(key), Via::Bearer));
        }
        if let Some(credential) = token.strip_prefix(BATCH_JOB_PREFIX) {
            let key = crate::gateway::batches::job_key(state, credential, path).await?;
            let actor = Actor::ProjectKey { key: key.id, project: key.project_id };
            return Ok((actor, None, Some(key), Via::BatchJob));
        }
        let user = state.db.api_token_user(&sha256_hex(token.as_bytes())).await?.ok_or(AppError::Unauthenticated)?;
        let (actor, user) = actor_of(state, user).await?;
        return Ok((actor, user, None, Via::Bearer));
    }
    if let Some(session) = cookie(headers, &session_cookie)
        && let Some(user) = state.db.session_user(&sha256_hex(session.as_bytes())).await?
    {
        let (actor, user) = actor_of(state, user).await?;
        return Ok((actor, user, None, Via::Session));
    }
    Ok((Actor::Anonymous, None, None, Via::Nothing))
}

/// The one gate every route goes through: resolves the caller, applies the route's rule,
/// refuses browser writes from other origins, checks the CSRF token of API writes by cookie, and
/// hands the [`Caller`] to the handler.
pub async fn guard(State((state, rule)): State<(AppState, RouteRule)>, mut request: Request, next: Next) -> Response {
    let refusal = |error: AppError| match rule.kind {
        Kind::OpenAi => error.openai_response(),
        Kind::Api | Kind::Page => error.into_response(),
    };
    let (actor, user, key, via) = match resolve(&state, request.headers(), request.uri().path()).await {
        Ok(resolved) => resolved,
        Err(error) => return refusal(error),
    };
    let secure = state.config.secure_cookies;
    let headers = request.headers();
    let session = cookie(headers, &session_cookie_name(SESSION_COOKIE, secure)).map(str::to_owned);
    let presession_name = session_cookie_name(PRESESSION_COOKIE, secure);
    let presession = cookie(headers, &presession_name).filter(|value| value.len() == 64).map(str::to_owned);
    let mut new_presession = None;
    let csrf = match (via, session) {
        (Via::Session, Some(session)) => keyed_token(&state.secret, "session", &session),
        _ => {
            let value = presession.unwrap_or_else(|| new_presession.insert(new_secret()).clone());
            keyed_token(&state.secret, "presession", &value)
        }
    };
    match policy::check(&actor, rule.access) {
        Decision::Allow => {}
        Decision::Unauthenticated if rule.kind == Kind::Page => {
            let next_path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let login = format!("/login?next={}", page::url_encode(next_path));
            return denied(Redirect::to(&login).into_response());
        }
        Decision::Unauthenticated => return denied(refusal(AppError::Unauthenticated)),
        Decision::Forbidden if rule.kind == Kind::Page => {
            return denied(page::error_page(&request, StatusCode::FORBIDDEN, "error-forbidden"));
        }
        Decision::Forbidden => return denied(refusal(AppError::forbidden())),
    }
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let by_browser = via == Via::Session || rule.kind == Kind::Page;
    if unsafe_method && by_browser && !same_origin(&state, request.headers()) {
        const REFUSAL: &str = "a request from another site is refused";
        return match rule.kind {
            Kind::Page => page::error_page(&request, StatusCode::FORBIDDEN, "error-cross-site"),
            Kind::Api | Kind::OpenAi => refusal(AppError::Forbidden(REFUSAL)),
        };
    }
    if rule.kind == Kind::Api && via == Via::Session && unsafe_method {
        let header = request.headers().get(CSRF_HEADER).and_then(|value| value.to_str().ok());
        if !header.is_some_and(|header| constant_time_eq(header.as_bytes(), csrf.as_bytes())) {
            return AppError::Forbidden("missing or wrong X-CSRF-Token header").into_response();
        }
    }
    request.extensions_mut().insert(Caller { actor, user, key, via, csrf });
    let mut response = next.run(request).await;
    if let Some(value) = new_presession.filter(|_| rule.kind == Kind::Page) {
        let cookie = set_cookie(&presession_name, &value, state.config.session_ttl.as_secs(), secure);
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// Marks a refusal by the route's rule, so that tests and operators can tell it from a refusal
/// by a handler's own check.
fn denied(mut response: Response) -> Response {
    response.headers_mut().insert(DENIED_HEADER, HeaderValue::from_static("policy"));
    response
}

/// Checks a form's CSRF field against the token of the browser's session.
pub fn check_csrf(caller: &Caller, submitted: &str) -> bool {
    constant_time_eq(caller.csrf.as_bytes(), submitted.as_bytes())
}

/// Login throttling, so that guessing is slow and nobody can lock the owner out: per account
/// and client address, each failure after the first `free_failures` doubles the wait before the
/// next attempt from that address for that account (up to `max_delay`); another address is not
/// slowed down, so the right password from elsewhere still works. Per client address, at most
/// `per_address` attempts per window whatever the accounts (no sweeping many accounts from one
/// place). Bounded: at most `MAX_KEYS` entries, expired ones dropped first; full of live ones,
/// it refuses (fails closed).
pub struct LoginThrottle {
    free_failures: u32,
    max_delay: Duration,
    per_address: u32,
    window: Duration,
    inner: Mutex<Throttled>,
}

#[derive(Default)]
struct Throttled {
    /// (account, address) -> (failures, not before).
    pairs: HashMap<String, (u32, Instant)>,
    /// address -> (window start, attempts).
    addresses: HashMap<String, (Instant, u32)>,
}

impl LoginThrottle {
    const MAX_KEYS: usize = 100_000;

    pub fn new(per_address: u32, window: Duration) -> LoginThrottle {
        LoginThrottle {
            free_failures: 3,
            max_delay: Duration::from_secs(15 * 60),
            per_address,
            window,
            inner: Mutex::new(Throttled::default()),
        }
    }

    /// May this address try this account now? Counts the attempt against the address.
    pub fn check(&self, account: &str, address: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else { return Ok(()) };
        if inner.pairs.len() + inner.addresses.len() >= LoginThrottle::MAX_KEYS {
            let window = self.window;
            inner.pairs.retain(|_, (_, not_before)| *not_before > now);
            inner.addresses.retain(|_, (start, _)| now.duration_since(*start) < window);
            if inner.pairs.len() + inner.addresses.len() >= LoginThrottle::MAX_KEYS {
                return Err(AppError::TooManyRequests { retry_after_s: 60 });
            }
        }
        if let Some((_, not_before)) = inner.pairs.get(&format!("{account}|{address}"))
            && *not_before > now
        {
            return Err(AppError::TooManyRequests { retry_after_s: whole_seconds(*not_before - now) });
        }
        let entry = inner.addresses.entry(address.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > self.per_address {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(AppError::TooManyRequests { retry_after_s: whole_seconds(left) });
        }
        Ok(())
    }

    /// A wrong password: the wait before this address's next try of this account grows.
    pub fn failed(&self, account: &str, address: &str) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let entry = inner.pairs.entry(format!("{account}|{address}")).or_insert((0, Instant::now()));
        entry.0 += 1;
        let doublings = entry.0.saturating_sub(self.free_failures);
        if doublings > 0 {
            let delay = Duration::from_secs(1u64 << doublings.min(20)).min(self.max_delay);
            entry.1 = Instant::now() + delay;
        }
    }

    /// The right password: this address starts afresh for this account.
    pub fn succeeded(&self, account: &str, address: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.pairs.remove(&format!("{account}|{address}"));
        }
    }
}

/// A wait in whole seconds for `Retry-After`, rounded up: a client that waits that long is let in.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_down_one_account_from_one_address_only() {
        let throttle = LoginThrottle::new(100, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(throttle.check("a@x.org", "10.0.0.1").is_ok());
            throttle.failed("a@x.org", "10.0.0.1");
        }
        assert!(throttle.check("a@x.org", "10.0.0.1").is_ok(), "three failures are free");
        throttle.failed("a@x.org", "10.0.0.1");
        let Err(AppError::TooManyRequests { retry_after_s }) = throttle.check("a@x.org", "10.0.0.1") else {
            panic!("the fourth failure waits")
        };
        assert_eq!(retry_after_s, 2);
        assert!(throttle.check("a@x.org", "10.0.0.2").is_ok(), "another address is not slowed down");
        assert!(throttle.check("b@x.org", "10.0.0.1").is_ok(), "nor another account");
        throttle.succeeded("a@x.org", "10.0.0.1");
        assert!(throttle.check("a@x.org", "10.0.0.1").is_ok());
        let sweeping = LoginThrottle::new(2, Duration::from_secs(60));
        assert!(sweeping.check("a", "1").is_ok() && sweeping.check("b", "1").is_ok());
        assert!(sweeping.check("c", "1").is_err(), "per address, whatever the account");
    }

    #[test]
    fn cookies_are_parsed_from_every_header() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; grappe_session=abc"));
        headers.append(COOKIE, HeaderValue::from_static("lang=en"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "lang"), Some("en"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
