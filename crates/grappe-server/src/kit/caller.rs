//! Who is calling: bearer tokens, session cookies and the admin token become an [`Actor`], and
//! the route's [`Access`] rule is checked by [`guard`] before any handler runs. Passwords are
//! hashed with argon2id; secrets are stored as SHA-256 only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
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
pub const CSRF_COOKIE: &str = "grappe_csrf";
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

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Nothing,
    Bearer,
    Session,
}

/// The resolved caller, put in the request's extensions by [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub user: Option<UserRow>,
    pub via: Via,
    /// The CSRF token of this browser (double-submit cookie), for forms to embed.
    pub csrf: String,
}

impl Caller {
    /// The name recorded in the audit log.
    pub fn audit_name(&self) -> String {
        match (&self.actor, &self.user) {
            (Actor::AdminToken, _) => "admin-token".to_owned(),
            (_, Some(user)) => format!("user:{}", user.id),
            _ => "anonymous".to_owned(),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn actor_of(state: &AppState, user: UserRow) -> Result<(Actor, Option<UserRow>), AppError> {
    let grants = state.db.grants_of(user.id).await?.into_iter().map(|row| row.grant).collect();
    Ok((Actor::User { id: user.id, grants }, Some(user)))
}

/// Credentials to caller. A bearer token that is present but invalid is refused (401) even on
/// public routes; a stale session cookie only makes the caller anonymous.
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<(Actor, Option<UserRow>, Via), AppError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|text| text.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AppError::Unauthenticated)?;
        if let Some(admin_token) = &state.config.admin_token
            && constant_time_eq(admin_token.as_bytes(), token.as_bytes())
        {
            return Ok((Actor::AdminToken, None, Via::Bearer));
        }
        let user = state.db.api_token_user(&sha256_hex(token.as_bytes())).await?.ok_or(AppError::Unauthenticated)?;
        let (actor, user) = actor_of(state, user).await?;
        return Ok((actor, user, Via::Bearer));
    }
    if let Some(session) = cookie(headers, SESSION_COOKIE)
        && let Some(user) = state.db.session_user(&sha256_hex(session.as_bytes())).await?
    {
        let (actor, user) = actor_of(state, user).await?;
        return Ok((actor, user, Via::Session));
    }
    Ok((Actor::Anonymous, None, Via::Nothing))
}

/// The one gate every route goes through: resolves the caller, applies the route's rule, checks
/// CSRF on cookie-authenticated API writes, and hands the [`Caller`] to the handler.
pub async fn guard(State((state, rule)): State<(AppState, RouteRule)>, mut request: Request, next: Next) -> Response {
    let (actor, user, via) = match resolve(&state, request.headers()).await {
        Ok(resolved) => resolved,
        Err(error) => return error.into_response(),
    };
    let existing_csrf = cookie(request.headers(), CSRF_COOKIE).filter(|value| value.len() == 64).map(str::to_owned);
    let csrf = existing_csrf.clone().unwrap_or_else(new_secret);
    match policy::check(&actor, rule.access) {
        Decision::Allow => {}
        Decision::Unauthenticated if rule.kind == Kind::Page => {
            let next_path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let login = format!("/login?next={}", page::url_encode(next_path));
            return denied(Redirect::to(&login).into_response());
        }
        Decision::Unauthenticated => return denied(AppError::Unauthenticated.into_response()),
        Decision::Forbidden if rule.kind == Kind::Page => {
            return denied(page::error_page(&request, StatusCode::FORBIDDEN, "error-forbidden"));
        }
        Decision::Forbidden => return denied(AppError::forbidden().into_response()),
    }
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if rule.kind == Kind::Api && via == Via::Session && unsafe_method {
        let header = request.headers().get(CSRF_HEADER).and_then(|value| value.to_str().ok());
        let matches = matches!((header, existing_csrf.as_deref()), (Some(h), Some(c)) if constant_time_eq(h.as_bytes(), c.as_bytes()));
        if !matches {
            return AppError::Forbidden("missing or wrong X-CSRF-Token header").into_response();
        }
    }
    request.extensions_mut().insert(Caller { actor, user, via, csrf: csrf.clone() });
    let mut response = next.run(request).await;
    if rule.kind == Kind::Page && existing_csrf.is_none() {
        let value = set_cookie(CSRF_COOKIE, &csrf, state.config.session_ttl.as_secs(), state.config.secure_cookies);
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Marks a refusal by the route's rule, so that tests and operators can tell it from a refusal
/// by a handler's own check.
fn denied(mut response: Response) -> Response {
    response.headers_mut().insert(DENIED_HEADER, HeaderValue::from_static("policy"));
    response
}

/// Checks a form's CSRF field against the browser's cookie.
pub fn check_csrf(caller: &Caller, submitted: &str) -> bool {
    constant_time_eq(caller.csrf.as_bytes(), submitted.as_bytes())
}

/// A fixed-window limiter: at most a given number of attempts per window for each key (a client
/// address, an account). Bounded: expired keys are dropped when the table grows past `MAX_KEYS`.
pub struct RateLimiter {
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    const MAX_KEYS: usize = 100_000;

    pub fn new(window: Duration) -> RateLimiter {
        RateLimiter { window, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt under each key, each with its own limit; refused with the seconds to
    /// wait if any key is spent.
    pub fn attempt(&self, keys: &[(String, u32)]) -> Result<(), AppError> {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() >= RateLimiter::MAX_KEYS {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if windows.len() >= RateLimiter::MAX_KEYS {
                // Full of live windows: refuse rather than grow (fail closed).
                return Err(AppError::TooManyRequests { retry_after_s: self.window.as_secs().max(1) });
            }
        }
        let mut wait_s = 0;
        for (key, limit) in keys {
            let entry = windows.entry(key.clone()).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
            if entry.1 > *limit {
                let left = self.window.saturating_sub(now.duration_since(entry.0));
                wait_s = wait_s.max(left.as_secs().max(1));
            }
        }
        if wait_s > 0 { Err(AppError::TooManyRequests { retry_after_s: wait_s }) } else { Ok(()) }
    }

    /// Forgets an account's failures after it logs in.
    pub fn reset(&self, key: &str) {
        if let Ok(mut windows) = self.windows.lock() {
            windows.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_past_the_limit_per_key() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let keys = [("ip:1".to_owned(), 3), ("email:a".to_owned(), 2)];
        assert!(limiter.attempt(&keys).is_ok());
        assert!(limiter.attempt(&keys).is_ok());
        assert!(matches!(limiter.attempt(&keys), Err(AppError::TooManyRequests { .. })));
        limiter.reset("email:a");
        assert!(limiter.attempt(&[("email:a".to_owned(), 2)]).is_ok());
        assert!(limiter.attempt(&[("ip:1".to_owned(), 3)]).is_err());
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
