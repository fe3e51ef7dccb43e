//! The kit: what every module needs, and nothing of any module. It imports no module and not
//! the route table (`crate::routes`); modules import it.
//!
//! - [`state`]: the server's settings and the state every handler shares.
//! - [`route`]: the route types each module builds its fragment of the table with.
//! - [`caller`]: credentials to a [`caller::Caller`], the [`caller::guard`] every route goes
//!   through, CSRF, cookies, password hashing, the login rate limiter.
//! - [`extract`]: request extractors that answer with the JSON envelope.
//! - [`error`]: [`error::AppError`] and the `{"error", "detail"}` envelope.
//! - [`page`]: the page chrome, rendering, error pages, dates, the fallback for unknown paths.
//! - [`i18n`]: every user-facing text in French and English.
//! - [`metrics`]: Prometheus counters by route pattern.
//! - [`background`]: the lease-holding ticker.
//! - [`multipart`]: `multipart/form-data` bodies (forms with a file).
//! - [`permits`]: counted permits for what clients hold open (log streams).
//! - [`serve`]: the accept loop, with its timeouts and connection caps.
//! - [`range`]: byte ranges over bodies of known size (logs, dataset files).
//! - [`stored`]: store files served with `Range`, store work off the async threads.

pub mod background;
pub mod caller;
pub mod error;
pub mod extract;
pub mod i18n;
pub mod metrics;
pub mod multipart;
pub mod page;
pub mod permits;
pub mod range;
pub mod route;
pub mod serve;
pub mod state;
pub mod stored;
pub mod zone;
