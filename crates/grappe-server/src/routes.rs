//! The route table: every route of the server, with the rule that says who may call it. The
//! router, the OpenAPI document and the authorization test are all built from [`table`], so a
//! route cannot exist without a rule, and cannot be missing from the test.

use axum::Router;
use axum::handler::Handler;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};
use grappe_domain::account::Role;
use grappe_domain::policy::Access;

use crate::auth::{self, RouteRule};
use crate::state::AppState;
use crate::{api, compute, web};

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

    fn filter(self) -> MethodFilter {
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
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
    pub summary: &'static str,
    /// The name of the request body's schema in the OpenAPI components, if it takes one.
    pub body: Option<&'static str>,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn body(mut self, schema: &'static str) -> Route {
        self.body = Some(schema);
        self
    }
}

fn route<H, T>(
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

pub fn table() -> Vec<Route> {
    use Access::{GlobalRole, Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Delete, Get, Post};
    let admin = GlobalRole(Role::Admin);
    let mut routes = vec![
        route(Api, Get, "/healthz", Public, "Liveness and database reachability", api::healthz),
        route(Api, Get, "/metrics", Public, "Prometheus metrics", api::metrics),
        route(Api, Get, "/api/v1/openapi.json", Public, "This API's OpenAPI document", api::openapi),
        route(
            Api,
            Get,
            "/api/v1/programme",
            Public,
            "Instruments, budget lines (euro cents) and key figures",
            api::programme,
        ),
        route(
            Api,
            Post,
            "/api/v1/auth/token",
            Public,
            "Exchange email and password for an API token",
            api::login_token,
        )
        .body("LoginToken"),
        route(Api, Get, "/api/v1/me", SignedIn, "The caller", api::me),
        route(Api, Get, "/api/v1/tokens", SignedIn, "The caller's API tokens", api::list_tokens),
        route(Api, Post, "/api/v1/tokens", SignedIn, "Create an API token for the caller", api::create_token)
            .body("NewToken"),
        route(
            Api,
            Delete,
            "/api/v1/tokens/{id}",
            SignedIn,
            "Revoke an API token (its owner or an admin)",
            api::revoke_token,
        ),
        route(Api, Get, "/api/v1/users", admin, "List users", api::list_users),
        route(Api, Post, "/api/v1/users", admin, "Create a user", api::create_user).body("NewUser"),
        route(Api, Get, "/api/v1/users/{id}", SignedIn, "One user (the user itself or an admin)", api::get_user),
        route(Api, Post, "/api/v1/users/{id}/grants", admin, "Grant a role", api::grant_role).body("NewGrant"),
        route(Api, Delete, "/api/v1/users/{id}/grants/{grant_id}", admin, "Revoke a role", api::revoke_grant),
        route(Api, Get, "/api/v1/organisations", SignedIn, "List organisations", api::list_organisations),
        route(Api, Post, "/api/v1/organisations", admin, "Create an organisation", api::create_organisation)
            .body("NewOrganisation"),
        route(Api, Get, "/api/v1/audit", admin, "The audit log, newest first, and whether its chain holds", api::audit),
        route(
            Api,
            Get,
            "/api/v1/system/leases",
            admin,
            "Background loops: which process holds each lease",
            api::leases,
        ),
        route(Api, Post, "/api/v1/projects", admin, "Create a project with its allocation", compute::create_project)
            .body("NewProject"),
        route(Api, Get, "/api/v1/projects", SignedIn, "The projects the caller belongs to", compute::list_projects),
        route(
            Api,
            Get,
            "/api/v1/projects/{id}",
            SignedIn,
            "A project, its allocation and usage (members)",
            compute::get_project,
        ),
        route(Api, Post, "/api/v1/projects/{id}/members", admin, "Add a member to a project", compute::add_member)
            .body("NewMember"),
        route(
            Api,
            Get,
            "/api/v1/projects/{id}/usage.csv",
            SignedIn,
            "A project's usage as CSV (members)",
            compute::usage_csv,
        ),
        route(
            Api,
            Post,
            "/api/v1/jobs",
            SignedIn,
            "Submit a job, or estimate its cost with dry_run (members)",
            compute::submit_job,
        )
        .body("NewJob"),
        route(Api, Get, "/api/v1/jobs", SignedIn, "Jobs of the caller's projects, newest first", compute::list_jobs),
        route(Api, Get, "/api/v1/jobs/{id}", SignedIn, "A job (members of its project)", compute::get_job),
        route(
            Api,
            Get,
            "/api/v1/jobs/{id}/logs",
            SignedIn,
            "A job's output; ?follow=true streams it",
            compute::job_logs,
        ),
        route(Api, Get, "/api/v1/jobs/{id}/events", SignedIn, "A job's timeline", compute::job_events),
        route(Api, Post, "/api/v1/jobs/{id}/cancel", SignedIn, "Cancel a job", compute::cancel_job),
        route(
            Api,
            Post,
            "/api/v1/jobs/{id}/metrics",
            SignedIn,
            "Append metrics (MLflow log-batch shape)",
            compute::log_batch,
        )
        .body("LogBatch"),
        route(Api, Get, "/api/v1/jobs/{id}/metrics", SignedIn, "A job's metrics", compute::job_metrics),
        route(Page, Get, "/", Public, "Programme dashboard", web::dashboard),
        route(Page, Get, "/login", Public, "Login form", web::login_form),
        route(Page, Post, "/login", Public, "Log in", web::login_submit),
        route(Page, Post, "/logout", SignedIn, "Log out", web::logout),
        route(Page, Get, "/lang/{code}", Public, "Choose the interface language", web::set_language),
        route(Page, Get, "/account", SignedIn, "The caller's account", web::account),
        route(Page, Get, "/static/app.css", Public, "Style sheet", web::stylesheet),
        route(Page, Get, "/compute", Public, "Compute: projects and the queue", compute::pages::compute_page),
        route(Page, Get, "/compute/projects/{id}", SignedIn, "A project's page", compute::pages::project_page),
        route(
            Page,
            Post,
            "/compute/projects/{id}/jobs",
            SignedIn,
            "Submit a job from the form",
            compute::pages::submit_form,
        ),
        route(Page, Get, "/compute/jobs/{id}", SignedIn, "A job's page", compute::pages::job_page),
        route(
            Page,
            Post,
            "/compute/jobs/{id}/cancel",
            SignedIn,
            "Cancel a job from its page",
            compute::pages::cancel_form,
        ),
    ];
    for (path, summary) in web::MODULE_PAGES {
        routes.push(route(Page, Get, path, Public, summary, web::module_page));
    }
    routes
}

/// The application router: every route of [`table`] behind [`auth::guard`] with its own rule.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in table() {
        let rule = RouteRule { access: route.access, kind: route.kind };
        let guarded = route.handler.layer(middleware::from_fn_with_state((state.clone(), rule), auth::guard));
        router = router.route(route.path, guarded);
    }
    router.with_state(state)
}
