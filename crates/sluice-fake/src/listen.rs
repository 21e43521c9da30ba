//! The accept loop every fake shares (Anthropic, Codex, Gemini, OpenAI): HTTP/1.1
//! keep-alive or h2c on an ephemeral port, `TCP_NODELAY`, and a cancellation token that stops
//! accepting and cuts every open connection (hanging replies included).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::body::FakeBody;

/// A fake's request handler: an error drops the connection.
pub(crate) type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
        ) -> Pin<Box<dyn Future<Output = io::Result<Response<FakeBody>>> + Send>>
        + Send
        + Sync,
>;

/// A [`Handler`] that hands every request, with the fake's shared state, to `handle`.
pub(crate) fn handler<S, F, Fut>(shared: Arc<S>, handle: F) -> Handler
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Response<FakeBody>>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(handle(shared.clone(), req)))
}

/// A listening fake server.
#[derive(Debug)]
pub(crate) struct Running {
    pub addr: SocketAddr,
    pub cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Bind `addr` and serve with `handler`. Must be called from within a tokio runtime.
    pub(crate) fn start(
        addr: SocketAddr,
        cancel: CancellationToken,
        handler: Handler,
        name: &'static str,
    ) -> io::Result<Running> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept(listener, cancel.clone(), handler));
        debug!(%addr, name, "fake listening");
        Ok(Running { addr, cancel, task })
    }

    pub(crate) fn shutdown(&self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Dropping this task (abort) drops the `JoinSet`, which aborts every connection.
async fn accept(listener: TcpListener, cancel: CancellationToken, handler: Handler) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "fake: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(error = %e, "fake: set_nodelay failed");
                }
                let handler = handler.clone();
                let builder = builder.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handler(req));
                    if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                        debug!(%peer, error = %e, "fake: connection ended with error");
                    }
                });
            }
        }
    }
}
