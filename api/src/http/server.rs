//! The HTTP/1.1 listener: connection-level limits the request middleware cannot give.
//!
//! `axum::serve` sets no timer on its connections, so a client that sends its request
//! headers one byte at a time (slowloris) holds a connection, a task and a socket for as
//! long as it likes, and a graceful shutdown waits for it. Here every connection must
//! deliver its complete request headers within [`ConnectionLimits::header_read_timeout`]
//! (hyper's own timer-driven check, for the first request and every keep-alive one), at
//! most [`ConnectionLimits::max_connections`] are open at once (the accept loop waits for
//! a free slot), and shutdown stops accepting, lets requests in progress finish for
//! [`ConnectionLimits::shutdown_grace`], then closes what is left.
//!
//! Why not a crate: the parts are hyper's and hyper-util's (connection builder, timer,
//! graceful-shutdown watcher); what is here is the accept loop tying them to the router.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Limits of the listener itself (request limits are in [`super::limits`]).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Connections open at once; the next one is accepted when one closes.
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress before closing connections.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains as described in
/// the module docs. Handlers see the client address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as large as what is open.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn(with_address(router.clone(), remote));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(client = %remote, error = %err, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period; closing them");
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// A response on its way, as the hyper service hands it back.
type Responding =
    std::pin::Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

/// The router as a hyper service that records the client's address for the handlers.
fn with_address(
    router: Router,
    remote: SocketAddr,
) -> impl Fn(Request<Incoming>) -> Responding + Clone {
    move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let router = router.clone();
        Box::pin(async move { router.oneshot(request.map(Body::new)).await })
    }
}
