//! The HTTP API: routes, and the tower layers around them.

mod admin;
pub mod audit;
mod audited;
mod auth;
mod edge;
mod encoding;
pub mod error;
mod extract;
mod filters;
pub mod idempotency;
pub mod live;
mod observe;
mod publish;
mod sse;
mod state;
mod subscriptions;
mod target;
mod topics;

use axum::extract::{Request, State};
use axum::middleware::from_fn_with_state;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Extension, Router};

use crate::api::error::ApiError;
use crate::delivery::sse::Streams;
pub use edge::App;
pub use state::{AppState, StartError};

/// Every route served, as `(method, path)` in OpenAPI path syntax; the router is built from
/// these paths and a test holds `openapi/openapi.yaml` to the same set.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", PUBLISH),
    ("post", PUBLISH_BATCH),
    ("get", HEALTHZ),
    ("get", READYZ),
    ("get", METRICS),
    ("get", BROKERS),
    ("get", BROKER_TOPICS),
    ("get", SUBSCRIPTIONS),
    ("get", SUBSCRIPTION),
    ("put", SUBSCRIPTION),
    ("delete", SUBSCRIPTION),
    ("post", SUBSCRIPTION_PAUSE),
    ("post", SUBSCRIPTION_RESUME),
    ("get", SUBSCRIBE_SSE),
    ("post", FILTERS_EVALUATE),
    ("get", CONFIG),
];

const PUBLISH: &str = "/v1/publish/{broker}/{topic}";
const PUBLISH_BATCH: &str = "/v1/publish/{broker}/{topic}/batch";
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS: &str = "/metrics";
const BROKERS: &str = "/v1/brokers";
const BROKER_TOPICS: &str = "/v1/brokers/{broker}/topics";
const SUBSCRIPTIONS: &str = "/v1/subscriptions";
const SUBSCRIPTION: &str = "/v1/subscriptions/{name}";
const SUBSCRIPTION_PAUSE: &str = "/v1/subscriptions/{name}/pause";
const SUBSCRIPTION_RESUME: &str = "/v1/subscriptions/{name}/resume";
const SUBSCRIBE_SSE: &str = "/v1/subscribe/{broker}/{topic}";
const FILTERS_EVALUATE: &str = "/v1/filters/evaluate";
const CONFIG: &str = "/v1/config";

/// The sidebus API over `state`, ready to serve. Its SSE streams end only when their clients
/// leave; [`router_with`] takes a [`Streams`] handle that can end them (on shutdown).
pub fn router(state: AppState) -> App {
    let streams = Streams::new(state.live().config.sse.max_streams);
    router_with(state, streams)
}

/// The sidebus API over `state`, with its SSE streams counted and ended through `streams`.
pub fn router_with(state: AppState, streams: Streams) -> App {
    let live = state.live();
    let mut sse_route = get(sse::subscribe).layer(Extension(streams));
    if let Some(cors) = sse::cors(&live.config.sse) {
        // The CORS layer answers preflight requests itself; it sees them only if OPTIONS
        // reaches the route (any other OPTIONS request is still 405).
        sse_route = sse_route.options(method_not_allowed).layer(cors);
    }
    // What a request passes, outermost first:
    //  1. the edge ([`App`]): an encoding sidebus cannot decode is 415, bodies are decoded as
    //     they are read and bounded by `limits.max_body` in force (413);
    //  2. the fallbacks: an unknown path is 404 and a known one with another method 405;
    //  3. guard: `/v1` routes need a principal's token (or the API token) when any is configured
    //     (401, audited as `denied`), and the request carries who it is; then state-changing
    //     requests and 403s are written to the audit log, when kept;
    //  4. the publish handlers observe themselves (`observe::publish`): the `publish` span, the
    //     trace context the events carry, and the request metrics per broker.
    let routes = Router::new()
        .route(PUBLISH, post(publish::publish_one))
        .route(PUBLISH_BATCH, post(publish::publish_batch))
        .route(HEALTHZ, get(admin::healthz))
        .route(READYZ, get(admin::readyz))
        .route(METRICS, get(admin::metrics))
        .route(BROKERS, get(admin::brokers))
        .route(BROKER_TOPICS, get(topics::list))
        .route(SUBSCRIPTIONS, get(subscriptions::list))
        .route(
            SUBSCRIPTION,
            put(subscriptions::put)
                .get(subscriptions::get)
                .delete(subscriptions::delete),
        )
        .route(SUBSCRIPTION_PAUSE, post(subscriptions::pause))
        .route(SUBSCRIPTION_RESUME, post(subscriptions::resume))
        .route(SUBSCRIBE_SSE, sse_route)
        .route(FILTERS_EVALUATE, post(filters::evaluate))
        .route(CONFIG, get(admin::config))
        .route_layer(from_fn_with_state(state.clone(), guard))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    App::new(state, routes)
}

/// Step 3: authentication, then the audit line around the rest.
async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Some(refused) = auth::admit(&state, &mut request) {
        return refused;
    }
    audited::around(&state, request, next).await
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not served on {}", uri.path()))
}
