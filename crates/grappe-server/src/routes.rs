//! The route table: every route of the server, with the rule that says who may call it, joined
//! from each module's fragment. The router, the OpenAPI document and the authorization test are
//! all built from [`table`], so a route cannot exist without a rule, and cannot be missing from
//! the test. This is the one file that knows every module.

use axum::Router;
use axum::middleware;
use grappe_domain::policy::Access;

use crate::kit::caller;
use crate::kit::route::route;
pub use crate::kit::route::{Kind, Method, Route};
use crate::kit::state::AppState;
use crate::{account, booster, calls, centres, challenges, compute, data, gateway, models, openapi, programme, system};

pub fn table() -> Vec<Route> {
    let mut routes = system::routes();
    routes.push(route(
        Kind::Api,
        Method::Get,
        "/api/v1/openapi.json",
        Access::Public,
        "This API's OpenAPI document",
        openapi::serve,
    ));
    routes.extend(programme::routes());
    routes.extend(account::routes());
    routes.extend(compute::routes());
    routes.extend(data::routes());
    routes.extend(calls::routes());
    routes.extend(centres::routes());
    routes.extend(challenges::routes());
    routes.extend(models::routes());
    routes.extend(gateway::routes());
    routes.extend(booster::routes());
    routes
}

/// The application router: every route of [`table`] behind [`caller::guard`] with its own rule.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in table() {
        let rule = route.rule();
        let guarded = route.handler.layer(middleware::from_fn_with_state((state.clone(), rule), caller::guard));
        router = router.route(route.path, guarded);
    }
    router.with_state(state)
}
