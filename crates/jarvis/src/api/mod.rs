//! The HTTP API: routes, envelope, middleware. Handlers are thin: they validate input, call the
//! domain modules and shape the answer. Only this module knows about HTTP and JSON shapes.

pub mod agents;
pub mod ai;
pub mod ai_models;
pub mod ai_usage;
pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod breakers;
pub mod dashboard;
pub mod envelope;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod retry;
pub mod schedules;
pub mod services;
pub mod state;
pub mod tasks;
pub mod traces;
pub mod types;

pub use state::AppState;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use envelope::ApiError;

/// Builds the whole router: public routes, the token-protected `/api/v1`, envelope fallbacks.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/services", get(services::list))
        .route(
            "/services/{name}",
            get(services::get)
                .put(services::put)
                .delete(services::delete),
        )
        .route("/health/services", get(health::services))
        .route("/health/services/{name}/history", get(health::history))
        .route("/circuit-breakers", get(breakers::list))
        .route("/circuit-breakers/{name}", get(breakers::get))
        .route("/circuit-breakers/{name}/{action}", post(breakers::act))
        .route("/execute", post(tasks::submit))
        .route("/tasks", post(tasks::submit).get(tasks::list))
        .route("/tasks/batch", post(tasks::batch))
        .route("/tasks/history", get(tasks::history))
        .route("/tasks/recommendations", get(tasks::recommendations))
        .route("/tasks/executions", get(tasks::executions))
        .route("/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/tasks/{id}/retry", post(retry::retry))
        .route("/schedules", get(schedules::list))
        .route(
            "/schedules/{name}",
            get(schedules::get)
                .put(schedules::put)
                .delete(schedules::delete),
        )
        .route("/schedules/{name}/pause", post(schedules::pause))
        .route("/schedules/{name}/resume", post(schedules::resume))
        .route("/ai/usage", get(ai_usage::usage))
        .route("/ai/budgets", get(ai_usage::budgets))
        .route("/ai/prices", get(ai_usage::prices))
        .route("/ai/models", get(ai_models::list))
        .route(
            "/ai/models/{group}",
            get(ai_models::get)
                .put(ai_models::put)
                .delete(ai_models::delete),
        )
        .route("/events", get(dashboard::events))
        .route("/openapi.json", get(openapi::serve))
        .route("/analytics/tasks", get(analytics::tasks))
        .route("/analytics/overview", get(analytics::overview))
        .route("/analytics/breakers", get(analytics::breakers))
        .route("/analytics/services", get(analytics::services))
        .route("/traces/{id}", get(traces::get))
        .route("/alerts", get(alerts::list))
        .route(
            "/alerts/silences",
            get(alerts::silences).post(alerts::silence),
        )
        .route(
            "/alerts/silences/{id}",
            axum::routing::delete(alerts::unsilence),
        )
        .route("/alerts/notifications", get(alerts::notifications))
        .route("/agents", get(agents::list))
        .route(
            "/agents/{domain}",
            get(agents::get).put(agents::put).delete(agents::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_token,
        ));

    // Public routes have a budget per client address (`api::auth`); the others per token.
    let public = Router::new()
        .route("/health", get(health::health))
        .merge(dashboard::router());
    let (public, metrics) = if state.config.server.metrics_public {
        (
            public.route("/metrics", get(breakers::metrics)),
            Router::new(),
        )
    } else {
        (
            public,
            Router::new()
                .route("/metrics", get(breakers::metrics))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    middleware::require_token,
                )),
        )
    };
    let public = public.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::limit_by_address,
    ));

    Router::new()
        .merge(public)
        .merge(metrics)
        .nest("/api/v1", api)
        .nest("/v1", ai::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.server.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limit_body,
        ))
        // Inside `correlate` (which would put the envelope's correlation ID in), outside
        // everything that answers an envelope error on `/v1/*`.
        .layer(axum::middleware::from_fn(ai::openai_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::correlate,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
