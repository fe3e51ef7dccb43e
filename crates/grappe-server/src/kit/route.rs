//! The route types every module builds its fragment of the route table with: a [`Route`] is a
//! method, a path, the [`Access`] rule the guard enforces, a kind (JSON API or page), a summary
//! and a handler. Modules' `routes()` return them; `crate::routes::table` joins them.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use grappe_domain::policy::Access;

use crate::kit::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    pub fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

/// JSON API routes answer errors with the envelope; pages redirect to the login form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Page,
    /// OpenAI's wire format (the gateway under `/v1`): errors as OpenAI's clients read them.
    OpenAi,
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
    pub summary: &'static str,
    /// The name of the request body's schema in the OpenAPI components, if it takes one.
    pub body: Option<&'static str>,
    pub handler: MethodRouter<AppState>,
}

impl Route {
    /// Names the schema of the request body in the OpenAPI document.
    pub fn body(mut self, schema: &'static str) -> Route {
        self.body = Some(schema);
        self
    }

    /// What the guard needs to know of this route.
    pub fn rule(&self) -> RouteRule {
        RouteRule { access: self.access, kind: self.kind }
    }
}

/// What a route states about itself, for the guard.
#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    pub access: Access,
    pub kind: Kind,
}

/// A route: its kind, method, path, rule, summary and handler.
pub fn route<H, T>(
    kind: Kind,
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: H,
) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route { method, path, access, kind, summary, body: None, handler: on(method.filter(), handler) }
}
