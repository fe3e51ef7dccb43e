//! Accounts: who people are and what they may do. Tokens by password, the caller, API tokens,
//! users and their role grants, organisations, the audit log (`api`); logging in and out and
//! the caller's account page (`pages`). Other modules reach users through `grappe-db` and
//! [`api::create_user_from`] (the demo), never through these handlers.

pub mod admin;
pub mod api;
pub mod pages;

use grappe_domain::account::Role;
use grappe_domain::policy::Access;

use crate::kit::route::{Kind, Method, Route, route};

pub fn routes() -> Vec<Route> {
    use Access::{GlobalRole, Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Delete, Get, Post};
    let admin = GlobalRole(Role::Admin);
    vec![
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
        route(Page, Get, "/login", Public, "Login form", pages::login_form),
        route(Page, Post, "/login", Public, "Log in", pages::login_submit),
        route(Page, Post, "/logout", SignedIn, "Log out", pages::logout),
        route(Page, Get, "/account", SignedIn, "The caller's account", pages::account),
        route(
            Page,
            Get,
            "/admin",
            admin,
            "Users, roles, organisations and projects, with their forms (administrators)",
            admin::admin_page,
        ),
        route(Page, Post, "/admin/users", admin, "Create a user from the admin page", admin::create_user_form),
        route(Page, Post, "/admin/grants", admin, "Grant a role from the admin page", admin::grant_form),
        route(
            Page,
            Post,
            "/admin/organisations",
            admin,
            "Create an organisation from the admin page",
            admin::create_organisation_form,
        ),
        route(Page, Post, "/admin/projects", admin, "Create a project from the admin page", admin::create_project_form),
        route(
            Page,
            Post,
            "/account/tokens/{id}/revoke",
            SignedIn,
            "Revoke one of the caller's API tokens",
            pages::revoke_token_form,
        ),
    ]
}
