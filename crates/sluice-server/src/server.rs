//! Accepting connections and shutting down gracefully; the routes sluice answers itself
//! (`/healthz`, `/status`, `/metrics`, the dashboard and `/api`), everything else goes to the
//! proxy.
//!
//! sluice runs its own accept loop (rather than `axum::serve`) to set `TCP_NODELAY` on every
//! client socket, bound header reads, serve HTTP/1.1 and HTTP/2 on one port, and drain
//! in-flight requests and streams on shutdown within a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::proxy;
use crate::state::AppState;
use crate::status;
use crate::{dashboard, observe};

/// Longest wait for in-flight requests and streams to finish after shutdown begins.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(15);

/// The routes sluice answers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status::root).head(status::root))
        .route("/healthz", get(status::healthz))
        .route("/status", get(status::status_handler))
        .route("/metrics", get(observe::metrics::handler))
        .merge(dashboard::routes())
        .fallback(any(proxy::handle))
        .with_state(state)
}

/// Serve sluice on `listener` until `shutdown` completes, then stop accepting and let
/// in-flight requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with_drain(listener, state, shutdown, DEFAULT_DRAIN).await
}

pub async fn serve_with_drain(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
) -> std::io::Result<()> {
    let router = router(state);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(error) = socket.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                let service = router.clone().map_request(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let mut request = request.map(axum::body::Body::new);
                        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                        request
                    },
                );
                let connection = builder
                    .serve_connection(TokioIo::new(socket), TowerToHyperService::new(service))
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: no longer accepting, draining in-flight requests"
    );
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_seconds = drain.as_secs(),
            "drain timed out; closing remaining connections"
        );
    }
    Ok(())
}
