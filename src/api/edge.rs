//! The edge: what every request passes before routing, written as one service around the
//! router instead of router layers, which axum applies to every route and which each cost a
//! boxed future and a clone of the route's service per request.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use futures::future::{self, Either, MapOk, Ready, TryFutureExt};
use tower::{Layer, Service};
use tower_http::decompression::{RequestDecompression, RequestDecompressionLayer};

use super::{encoding, AppState};

/// The routes behind the decompression of request bodies.
type Routes = RequestDecompression<Router>;

/// What the decompression layer answers, as the response axum serves.
type Decompressed = <Routes as Service<Request>>::Response;

/// The sidebus HTTP service: the edge, then the routes. `axum::serve` takes it as it takes a
/// `Router`.
#[derive(Clone)]
pub struct App {
    state: AppState,
    routes: Routes,
}

impl App {
    /// `routes` behind the edge:
    ///  1. a `Content-Encoding` sidebus cannot decode is 415, and bodies are read (decoded) up to
    ///     the `limits.max_body` in force when the request arrives, then refused with 413, so a
    ///     body that inflates past it is never inflated further;
    ///  2. gzip, deflate, br and zstd bodies are decoded as they are read.
    pub(super) fn new(state: AppState, routes: Router) -> Self {
        let routes = RequestDecompressionLayer::new()
            .pass_through_unaccepted(true)
            .layer(routes);
        Self { state, routes }
    }
}

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        MapOk<<Routes as Service<Request>>::Future, fn(Decompressed) -> Response>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Routes as Service<Request>>::poll_ready(&mut self.routes, cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(refused) = encoding::refuse_unknown(&mut request) {
            return Either::Left(future::ready(Ok(refused)));
        }
        DefaultBodyLimit::max(self.state.live().config.limits.max_body).apply(&mut request);
        let served: fn(Decompressed) -> Response = |response| response.map(Body::new);
        Either::Right(self.routes.call(request).map_ok(served))
    }
}

/// Each connection is served by a clone of the app, as `axum::serve` does with a `Router`.
impl<L: Listener> Service<IncomingStream<'_, L>> for App {
    type Response = App;
    type Error = Infallible;
    type Future = Ready<Result<App, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: IncomingStream<'_, L>) -> Self::Future {
        future::ready(Ok(self.clone()))
    }
}
